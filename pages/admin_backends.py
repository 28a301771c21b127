"""/admin/backends: every Ollama and vLLM endpoint with its live state, and what an admin does to one.

The table shows each backend's engine, URL, status, models, requests in flight (all workers), limits, node and
GPUs and last error, and under the limit any evidence that the engine queues requests of its own below it
(core.registry.capacity) with a one-click fix; one timer per page updates the cells in place, so a drain shows
its requests finishing and the row turning disabled without a reload. Register, edit, enable, disable, drain,
refresh, delete, (Ollama) pull or delete a model, and apply the advice all go through core.admin.cluster_actions:
the admin API's services, written to the admin log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from nicegui import ui
from pydantic import ValidationError

from components.admin_guard import admin_handler
from components.confirm import confirm
from components.frame import admin_frame
from components.notify import notify_failure
from components.session import SignedIn, require_admin
from components.validators import http_url, required
from core.admin import cluster_actions as actions
from core.db import get_database
from core.errors import InvalidRequest, MindRouterError
from core.models import Backend, BackendBase, BackendModel, BackendStatus, BackendUpdate, Engine
from core.registry import nodes, store
from core.registry.capacity import CapacityAdvice
from core.runtime import current

REFRESH_SECONDS = 1.0  # in-flight counts and drains move fast; one small query a second per open page
STATUS_COLORS: dict[str, str] = {BackendStatus.healthy: 'positive', BackendStatus.unhealthy: 'negative',
                                 BackendStatus.draining: 'warning', BackendStatus.disabled: 'grey-7'}
COLUMNS = ('Name', 'Engine', 'URL', 'Status', 'Models', 'In flight', 'Max', 'Priority', 'Node / GPUs', 'Last error',
           '')
NO_NODE = 0  # the node select's "none" (ids start at 1)

Fields = dict[str, Any]
RowAction = Literal['refresh', 'enable', 'disable', 'drain']


def register() -> None:
    @ui.page('/admin/backends')
    async def backends_page() -> None:
        async with admin_frame('Backends'):
            page = _BackendsPage()
        ui.timer(0.01, page.load, once=True)  # after the page is sent: queries never delay it
        ui.timer(REFRESH_SECONDS, page.tick)


class _Row:
    def __init__(self, page: _BackendsPage, backend_id: int) -> None:
        mark = f'backend-{backend_id}'
        self.backend: Backend | None = None
        self.models: list[BackendModel] = []
        with ui.element('tr').classes('border-t align-top').mark(mark) as self.tr:
            self.name, self.engine, self.url = _td('font-medium'), _td(), _td('text-xs break-all')
            with ui.element('td').classes('p-2'):
                self.badge = ui.badge('').mark(f'{mark}-status')
                self.progress = ui.label('').classes('text-xs text-orange-700').mark(f'{mark}-progress')
            self.model_count, self.in_flight = _td(marker=f'{mark}-models'), _td(marker=f'{mark}-inflight')
            with ui.element('td').classes('p-2'):
                self.max = ui.label('').mark(f'{mark}-max')
                self.advice = ui.column().classes('gap-1 text-xs text-orange-800 max-w-xs').mark(f'{mark}-advice')
                with self.advice:
                    self.advice_text = ui.label('').mark(f'{mark}-advice-text')
                    with ui.row().classes('gap-1'):
                        self.apply = ui.button('', on_click=lambda: page.apply_advice(backend_id)) \
                            .props('dense size=sm color=warning').mark(f'{mark}-advice-apply')
                        ui.button('Dismiss', on_click=lambda: page.dismiss_advice(backend_id)) \
                            .props('dense flat size=sm').mark(f'{mark}-advice-dismiss')
            self.priority, self.node = _td(marker=f'{mark}-priority'), _td()
            self.error = _td('text-xs text-red-600 max-w-xs break-words', marker=f'{mark}-error')
            with ui.element('td').classes('p-2'), ui.button(icon='more_vert').props('flat round dense') \
                    .mark(f'{mark}-actions'), ui.menu():
                def item(label: str, key: str, action: Callable[[int], Any]) -> ui.menu_item:
                    return ui.menu_item(label, on_click=lambda: action(backend_id)).mark(f'{mark}-{key}')
                item('Edit', 'edit', page.open_edit)
                item('Refresh models and health', 'refresh', lambda i: page.act(i, 'refresh'))
                self.enable = item('Enable', 'enable', lambda i: page.act(i, 'enable'))
                self.disable = item('Disable', 'disable', lambda i: page.act(i, 'disable'))
                self.drain = item('Drain', 'drain', lambda i: page.act(i, 'drain'))
                self.pull = item('Pull a model', 'pull', page.open_pull)
                self.delete = item('Delete a model', 'delete', page.open_delete)
                item('Delete backend', 'remove', page.remove)

    def update(self, backend: Backend, models: list[BackendModel], in_flight: int, node: str) -> None:
        self.backend, self.models = backend, models
        self.name.text, self.engine.text, self.url.text = backend.name, backend.engine, backend.url
        self.badge.text = backend.status
        self.badge.props(f'color={STATUS_COLORS.get(backend.status, "grey")}')
        draining = backend.status == BackendStatus.draining
        self.progress.visible = draining
        self.progress.text = (f'draining: {in_flight} request{"" if in_flight == 1 else "s"} still in flight'
                              if in_flight else 'draining: nothing in flight, disabling shortly')
        self.model_count.text = str(len(models))
        self.in_flight.text = str(in_flight)
        self.max.text, self.priority.text = str(backend.max_concurrent), str(backend.priority)
        advice = CapacityAdvice.from_json(backend.capacity_advice)
        self.advice.visible = advice is not None and advice.applies_to(backend.max_concurrent)
        if advice is not None and self.advice.visible:
            self.advice_text.text = f'Requests queue inside the engine: {advice.evidence}.'
            self.apply.text = f'Set max to {advice.suggested}'
        gpus = 'all GPUs' if backend.gpu_indices is None else 'GPU ' + ', '.join(map(str, backend.gpu_indices))
        self.node.text = f'{node} · {gpus}' if backend.node_id is not None else '—'
        self.error.text = backend.last_error or ''
        off = backend.status in (BackendStatus.disabled, BackendStatus.draining)
        self.enable.visible, self.disable.visible, self.drain.visible = off, not off, not off
        self.pull.visible = self.delete.visible = backend.engine == Engine.ollama


class _BackendsPage:
    def __init__(self) -> None:
        self.rows: dict[int, _Row] = {}
        self.loaded = False
        self.target = 0  # the backend the open dialog acts on
        with ui.expansion('Register a backend', icon='add').classes('w-full border rounded').mark('backend-register'):
            self.form = self._register_form()
        self.note = ui.label('').classes('text-sm text-orange-600').mark('backends-note')
        self.empty = ui.label('No backends registered yet.').classes('opacity-70').mark('backends-empty')
        self.empty.visible = False
        with ui.element('div').classes('w-full overflow-x-auto'), \
                ui.element('table').classes('w-full text-sm text-left').mark('backend-table'):
            with ui.element('thead'), ui.element('tr'):
                for title in COLUMNS:
                    with ui.element('th').classes('p-2 font-semibold'):
                        ui.label(title)
            self.body = ui.element('tbody')
        self._dialogs()

    def _register_form(self) -> Fields:
        with ui.grid(columns=4).classes('w-full gap-x-6'):
            form: Fields = {
                'name': ui.input('Name', validation=required(100)).mark('backend-name'),
                'url': ui.input('URL', placeholder='http://gpu1:11434', validation=http_url('http://gpu1:11434')).mark('backend-url'),
                'engine': ui.select({'ollama': 'Ollama', 'vllm': 'vLLM', 'tts': 'Text to speech (Speaches, Kokoro)',
                                     'stt': 'Speech to text (Speaches)'}, label='Engine', value='ollama')
                .mark('backend-engine'),
                'max_concurrent': ui.number('Max concurrent', value=4, min=1, max=4096, precision=0,
                                            validation=_between(1, 4096)).mark('backend-max'),
                'priority': ui.number('Priority (-10 to 10)', value=0, min=-10, max=10, precision=0,
                                      validation=_between(-10, 10)).mark('backend-priority'),
                'node_id': ui.select({NO_NODE: 'none'}, label='Node', value=NO_NODE).mark('backend-node'),
                'gpu_indices': ui.input('GPUs (blank: all of the node\'s)', placeholder='0,1',
                                        validation=_gpu_list).mark('backend-gpus'),
            }
        ui.button('Register backend', icon='add', on_click=self.register_backend).mark('backend-submit')
        return form

    def _dialogs(self) -> None:
        with ui.dialog() as self.edit_dialog, ui.card().classes('min-w-96').mark('edit-dialog'):
            self.edit_title = ui.label('').classes('text-lg font-semibold')
            self.edit: Fields = {
                'max_concurrent': ui.number('Max concurrent', min=1, max=4096, precision=0,
                                            validation=_between(1, 4096)).mark('edit-max'),
                'gpu_indices': ui.input('GPUs (blank: all of the node\'s)', validation=_gpu_list).mark('edit-gpus'),
                'priority': ui.number('Priority (-10 to 10)', min=-10, max=10, precision=0,
                                      validation=_between(-10, 10)).mark('edit-priority'),
            }
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=self.edit_dialog.close).props('flat')
                ui.button('Save', on_click=self.save_edit).mark('edit-save')
        with ui.dialog().props('persistent') as self.pull_dialog, ui.card().classes('min-w-96').mark('pull-dialog'):
            self.pull_title = ui.label('').classes('text-lg font-semibold')
            self.pull_model = ui.input('Model', placeholder='llama3.2:3b', validation=required(255)).mark('pull-model')
            self.pull_bar = ui.linear_progress(value=0, show_value=False).mark('pull-progress')
            self.pull_status = ui.label('').classes('text-sm').mark('pull-status')
            with ui.row().classes('w-full justify-end'):
                self.pull_close = ui.button('Close', on_click=self.pull_dialog.close).props('flat')
                self.pull_start = ui.button('Pull', on_click=self.pull).mark('pull-start')
        with ui.dialog() as self.delete_dialog, ui.card().classes('min-w-96').mark('delete-dialog'):
            self.delete_title = ui.label('').classes('text-lg font-semibold')
            self.delete_model = ui.select([], label='Model').classes('w-full').mark('delete-model')
            with ui.row().classes('w-full justify-end'):
                ui.button('Cancel', on_click=self.delete_dialog.close).props('flat')
                ui.button('Delete', on_click=self.delete).props('color=negative').mark('delete-start')

    @admin_handler
    async def load(self) -> None:
        await self.tick(force=True)
        self.loaded = True

    @admin_handler
    async def tick(self, force: bool = False) -> None:
        if not (self.loaded or force):
            return
        try:
            await self._sync()
        except MindRouterError as exc:  # the database is away: keep the table, say it is stale
            self.note.text = f'Cannot read the backends now: {exc.message}'

    async def _sync(self) -> None:
        async with get_database().session() as session:
            listing = await store.list_backends(session)
            node_names = {n.id: n.name for n in await nodes.list_nodes(session) if n.id is not None}
        runtime = current()
        in_flight = await actions.fleet_in_flight(runtime.ledger, runtime.registry) if runtime is not None else {}
        self.note.text = '' if runtime is not None else 'The gateway does not run in this process: read only.'
        options = {NO_NODE: 'none', **node_names}
        if self.form['node_id'].options != options:
            self.form['node_id'].set_options(options, value=self.form['node_id'].value
                                             if self.form['node_id'].value in options else NO_NODE)
        for gone in set(self.rows) - {backend.id for backend, _ in listing}:
            self.rows.pop(gone).tr.delete()
        for backend, models in listing:
            assert backend.id is not None
            if backend.id not in self.rows:
                with self.body:
                    self.rows[backend.id] = _Row(self, backend.id)
            node = node_names.get(backend.node_id or 0, f'node {backend.node_id}')
            self.rows[backend.id].update(backend, models, in_flight.get(backend.id, 0), node)
        self.empty.visible = not listing

    @admin_handler
    async def register_backend(self) -> None:
        form = self.form
        if not all([field.validate() for field in form.values()]):
            return
        values = {'name': (form['name'].value or '').strip(), 'url': (form['url'].value or '').strip(),
                  'engine': form['engine'].value, 'max_concurrent': _int(form['max_concurrent'].value),
                  'priority': _int(form['priority'].value), 'node_id': form['node_id'].value or None,
                  'gpu_indices': _parse_gpus(form['gpu_indices'].value)}
        try:
            data = BackendBase.model_validate(values)
            store.validate_backend(data)
        except (ValidationError, InvalidRequest) as exc:
            _show_errors(form, exc)
            return
        backend = await self._run(lambda actor: actions.register_backend(actions.live_runtime(), actor, data), form)
        if backend is not None:
            form['name'].value = form['url'].value = form['gpu_indices'].value = ''
            for field in form.values():
                field.error = None
            ui.notify(f'Backend {backend.name} registered: {backend.status}.',
                      type='positive' if backend.status == BackendStatus.healthy else 'warning')

    @admin_handler
    async def act(self, backend_id: int, action: RowAction) -> None:
        row = self.rows.get(backend_id)
        name = row.name.text if row else f'backend {backend_id}'
        if action == 'disable' and not await confirm(
                f'Disable {name}?', ok='Disable',
                detail='It takes no new requests from now on; those already running finish. Drain instead to '
                       'wait for them and disable it afterwards.'):
            return
        runtime = actions.live_runtime
        if action == 'refresh':
            done = await self._run(lambda actor: actions.refresh_backend(runtime(), actor, backend_id))
        else:
            done = await self._run(lambda actor: actions.set_backend_state(runtime(), actor, backend_id, action))
        if done is not None:
            ui.notify(f'{name}: {"checked, " if action == "refresh" else ""}{done.status}.')

    @admin_handler
    async def apply_advice(self, backend_id: int) -> None:
        done = await self._run(lambda actor: actions.apply_capacity_advice(actions.live_runtime(), actor, backend_id))
        if done is not None:
            ui.notify(f'{done.name}: max_concurrent is now {done.max_concurrent}.', type='positive')

    @admin_handler
    async def dismiss_advice(self, backend_id: int) -> None:
        await self._run(lambda actor: actions.dismiss_capacity_advice(actions.live_runtime(), actor, backend_id))

    @admin_handler
    async def remove(self, backend_id: int) -> None:
        row = self.rows.get(backend_id)
        name = row.name.text if row else f'backend {backend_id}'
        if not await confirm(
                f'Delete backend {name}?', ok='Delete',
                detail='It goes with its model list and telemetry history; its requests stay in the audit log under '
                       'its name. Refused while requests run on it: drain it first.'):
            return
        done = await self._run(lambda actor: actions.delete_backend(actions.live_runtime(), actor, backend_id))
        if done is not None:
            ui.notify(f'Backend {name} deleted.', type='positive')

    @admin_handler
    async def open_edit(self, backend_id: int) -> None:
        row = self.rows.get(backend_id)
        if row is None or row.backend is None:
            return
        self.target, backend = backend_id, row.backend
        self.edit_title.text = f'Edit {backend.name}'
        self.edit['max_concurrent'].value = backend.max_concurrent
        self.edit['priority'].value = backend.priority
        self.edit['gpu_indices'].value = ','.join(map(str, backend.gpu_indices or []))
        for field in self.edit.values():
            field.error = None
        self.edit_dialog.open()

    @admin_handler
    async def save_edit(self) -> None:
        row = self.rows.get(self.target)
        if row is None or row.backend is None or not all([f.validate() for f in self.edit.values()]):
            return
        backend, backend_id = row.backend, self.target
        wanted = {'max_concurrent': _int(self.edit['max_concurrent'].value),
                  'priority': _int(self.edit['priority'].value),
                  'gpu_indices': _parse_gpus(self.edit['gpu_indices'].value)}
        changed = {name: value for name, value in wanted.items() if getattr(backend, name) != value}
        try:
            changes = BackendUpdate.model_validate(changed)
        except ValidationError as exc:
            _show_errors(self.edit, exc)
            return
        if changed:
            done = await self._run(lambda actor: actions.update_backend(actions.live_runtime(), actor, backend_id,
                                                                        changes), self.edit)
            if done is None:
                return
            ui.notify(f'{done.name} saved.')
        self.edit_dialog.close()

    @admin_handler
    async def open_pull(self, backend_id: int) -> None:
        row = self.rows.get(backend_id)
        self.target = backend_id
        self.pull_title.text = f'Pull a model onto {row.name.text if row else backend_id}'
        self.pull_model.value, self.pull_model.error = '', None
        self.pull_bar.value, self.pull_status.text = 0, ''
        self.pull_dialog.open()

    @admin_handler
    async def pull(self) -> None:
        if not self.pull_model.validate():
            return
        model, backend_id = self.pull_model.value.strip(), self.target
        self.pull_start.disable()
        self.pull_close.disable()  # the pull finishes (or fails) before the dialog goes
        try:
            admin = await require_admin()
            runtime = actions.live_runtime()
            async for progress in actions.pull_model(runtime, _actor(admin), backend_id, model):
                total, completed = progress.get('total'), progress.get('completed')
                if isinstance(total, int) and total > 0 and isinstance(completed, int):
                    self.pull_bar.value = round(completed / total, 3)
                self.pull_status.text = str(progress.get('status', ''))
        except (MindRouterError, PermissionError) as exc:
            if isinstance(exc, InvalidRequest) and exc.param == 'model':
                self.pull_model.error = exc.message
            self.pull_status.text = f'Failed: {exc}'
            notify_failure(exc)
        else:
            self.pull_bar.value = 1
            self.pull_status.text = f'{model} pulled; the model list is refreshed.'
            ui.notify(f'{model} pulled.', type='positive')
            await self.tick(force=True)
        finally:
            self.pull_start.enable()
            self.pull_close.enable()

    @admin_handler
    async def open_delete(self, backend_id: int) -> None:
        row = self.rows.get(backend_id)
        if row is None:
            return
        self.target = backend_id
        self.delete_title.text = f'Delete a model from {row.name.text}'
        self.delete_model.set_options([model.name for model in row.models], value=None)
        self.delete_dialog.open()

    @admin_handler
    async def delete(self) -> None:
        model, backend_id = self.delete_model.value, self.target
        if not model:
            self.delete_model.error = 'Choose a model'
            return
        self.delete_model.error = None
        if not await confirm(f'Delete {model}?', ok='Delete',
                             detail='Its files go from the backend; pull it again to serve it from there.'):
            return
        done = await self._run(lambda actor: actions.delete_model(actions.live_runtime(), actor, backend_id, model))
        if done is not None:
            ui.notify(f'{model} deleted from {done.name}.')
            self.delete_dialog.close()

    async def _run(self, change: Callable[[actions.Actor], Any], fields: Fields | None = None) -> Backend | None:
        """Do a change as the signed-in admin: its refusal shown at the field it names, or as a notification."""
        try:
            admin = await require_admin()
            backend: Backend = await change(_actor(admin))
        except InvalidRequest as exc:
            if fields is not None and exc.param in fields:
                fields[exc.param].error = exc.message
            else:
                notify_failure(exc)
            return None
        except (MindRouterError, PermissionError) as exc:
            notify_failure(exc)
            return None
        await self.tick(force=True)
        return backend


def _td(classes: str = '', *, marker: str = '') -> ui.label:
    with ui.element('td').classes('p-2'):
        label = ui.label('').classes(classes)
        return label.mark(marker) if marker else label


def _actor(admin: SignedIn) -> actions.Actor:
    return actions.Actor(id=admin.id, name=admin.username)


def _show_errors(fields: Fields, exc: ValidationError | InvalidRequest) -> None:
    """Validation of the API's own models and services, shown at the fields it names."""
    if isinstance(exc, InvalidRequest):
        errors = [(exc.param or '', exc.message)]
    else:
        errors = [(str(error['loc'][0]) if error['loc'] else '', error['msg']) for error in exc.errors()]
    for name, message in errors:
        if name in fields:
            fields[name].error = message
        else:
            notify_failure(InvalidRequest(message))


def _between(low: int, high: int) -> Callable[[float | None], str | None]:
    def check(value: float | None) -> str | None:
        if value is None or value != int(value) or not low <= value <= high:
            return f'A whole number from {low} to {high}'
        return None
    return check


def _gpu_list(value: str | None) -> str | None:
    try:
        _parse_gpus(value)
    except ValueError:
        return 'GPU numbers separated by commas, like 0,1'
    return None


def _parse_gpus(value: str | None) -> list[int] | None:
    text = (value or '').strip()
    if not text:
        return None
    indices = [int(part) for part in text.replace(' ', '').split(',')]
    if any(index < 0 for index in indices):
        raise ValueError('negative GPU number')
    return indices


def _int(value: float | None) -> int | None:
    return int(value) if value is not None else None
