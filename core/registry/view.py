"""The registry as the request path sees it: plain objects in memory, rebuilt from the database after
every change and every few seconds, so that no request ever waits on a query to find its backend."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from core.models import BackendStatus
from core.registry.engine_load import EngineLoad

_SPEECH_CAPABILITIES = frozenset({'speech', 'transcription'})


@dataclass(slots=True, frozen=True)
class ModelInfo:
    name: str
    family: str | None = None
    context_length: int | None = None
    capabilities: frozenset[str] = frozenset()
    parameter_size: str | None = None
    quantization: str | None = None
    size_bytes: int | None = None
    details: dict[str, Any] = field(default_factory=dict, hash=False)
    context_override: int | None = None  # an admin's choice for this model (model_settings)

    @property
    def is_embedding(self) -> bool:
        return 'embedding' in self.capabilities

    @property
    def is_speech(self) -> bool:
        """A text-to-speech or speech-to-text model (served only through /v1/audio/*)."""
        return bool(self.capabilities & _SPEECH_CAPABILITIES)

    @property
    def voices(self) -> list[str] | None:
        """A text-to-speech model's voices, as its server listed them; None when it did not say."""
        voices = self.details.get('voices')
        return [str(v) for v in voices] if isinstance(voices, list) and voices else None

    def effective_context(self, cap: int) -> int | None:
        """The context a request gets: the admin's override, else the model's own maximum capped at `cap`;
        never above the model's maximum. None when the model's maximum is unknown and nothing is set."""
        wanted = self.context_override or cap
        if self.context_length is None:
            return self.context_override
        return min(self.context_length, wanted)


@dataclass(slots=True, eq=False)
class BackendState:
    id: int
    name: str
    url: str
    engine: str
    max_concurrent: int
    status: str
    simulated: bool = False
    node_id: int | None = None
    gpu_indices: list[int] | None = None
    node_online: bool = True  # an offline node takes all its backends with it
    models: dict[str, ModelInfo] = field(default_factory=dict)
    load: EngineLoad | None = None  # what the engine said of its load at the last check
    priority: int = 0  # an admin's preference (core.scheduler.scoring)
    gpu_utilization: float | None = None  # mean over its own GPUs, from the latest node reading
    latency_ema_ms: float | None = None  # time to first byte, exponential moving average (this process)
    in_flight: int = 0  # requests this process has on it now
    fleet_in_flight: int | None = None  # all workers together, as the Redis ledger last read it; None: one process
    cooldown_until: float = 0.0  # monotonic time: a live request failed here; prefer others until then

    @property
    def healthy(self) -> bool:
        return self.status == BackendStatus.healthy and self.node_online

    def refresh_from(self, fresh: BackendState) -> None:
        """Take the database's view of this backend, keeping this object (slots in flight point at it)."""
        self.name, self.url, self.engine = fresh.name, fresh.url, fresh.engine
        self.max_concurrent, self.status, self.simulated = fresh.max_concurrent, fresh.status, fresh.simulated
        self.node_id, self.gpu_indices, self.node_online = fresh.node_id, fresh.gpu_indices, fresh.node_online
        self.models, self.load, self.priority = fresh.models, fresh.load, fresh.priority

    def observe_latency(self, milliseconds: float) -> None:
        self.latency_ema_ms = milliseconds if self.latency_ema_ms is None else \
            0.8 * self.latency_ema_ms + 0.2 * milliseconds

    @property
    def total_in_flight(self) -> int:
        """Requests on this backend from every worker (as last known), for display and load ordering."""
        return self.in_flight if self.fleet_in_flight is None else max(self.fleet_in_flight, self.in_flight)


@dataclass(slots=True, frozen=True)
class CatalogEntry:
    """One model in the union catalog, with every healthy backend that serves it."""

    info: ModelInfo
    backends: tuple[BackendState, ...]
    alias_for: str | None = None  # an alias's entry: the served model that answers it (info.name is the alias)


@dataclass(slots=True, frozen=True)
class AliasState:
    """An admin's alias as the gateway applies it now."""

    alias: str
    target: str  # as the admin set it
    served: str | None  # the served name it resolves to now; None: no backend serves the target
    shadowed: bool  # a backend serves a model of the alias's own name, which wins


class RegistryView:
    def __init__(self) -> None:
        self._backends: dict[int, BackendState] = {}
        self._by_model: dict[str, list[BackendState]] = {}
        self._aliases: dict[str, str] = {}  # alias -> target, as stored (core.registry.aliases)

    def replace(self, backends: Iterable[BackendState]) -> None:
        """Take fresh state from the database. A backend already known keeps its object — and so its
        in-flight count: slots taken before the reload release on the same object."""
        fresh: dict[int, BackendState] = {}
        for backend in backends:
            known = self._backends.get(backend.id)
            if known is not None:
                known.refresh_from(backend)
                backend = known
            fresh[backend.id] = backend
        by_model: dict[str, list[BackendState]] = {}
        for backend in fresh.values():
            for name in backend.models:
                by_model.setdefault(name, []).append(backend)
        self._backends, self._by_model = fresh, by_model

    def replace_aliases(self, aliases: dict[str, str]) -> None:
        self._aliases = dict(aliases)

    def backend(self, backend_id: int) -> BackendState | None:
        return self._backends.get(backend_id)

    @property
    def backends(self) -> list[BackendState]:
        return list(self._backends.values())

    def resolve(self, model: str) -> str | None:
        """The served name for a requested one: exact, Ollama's implicit `:latest` tag, or an alias's target
        (a served model always wins over an alias of the same name)."""
        served = self._served(model)
        if served is None and model in self._aliases:
            return self._served(self._aliases[model])
        return served

    def alias_target(self, model: str) -> str | None:
        """The served model `model` names as an alias in force (not shadowed); None otherwise. One dict lookup
        when the name is no alias, so the request path pays nothing for aliases it does not use."""
        target = self._aliases.get(model)
        if target is None or self._served(model) is not None:
            return None
        return self._served(target)

    def aliases(self) -> list[AliasState]:
        return [AliasState(alias=alias, target=target, served=self._served(target),
                           shadowed=self._served(alias) is not None)
                for alias, target in sorted(self._aliases.items())]

    def _served(self, model: str) -> str | None:
        if model in self._by_model:
            return model
        if ':' not in model and f'{model}:latest' in self._by_model:
            return f'{model}:latest'
        return None

    def serving(self, model: str) -> list[BackendState]:
        """Every backend that lists the (resolved) model, whatever its health."""
        return self._by_model.get(model, [])

    def catalog(self, *, include_aliases: bool = True, speech: bool = True) -> list[CatalogEntry]:
        """Every model a healthy backend serves, then (unless told not to) every alias in force, as an entry
        named by the alias that carries its target's details and says which model answers it. `speech=False`
        leaves out the speech models (text-to-speech, speech-to-text), for catalogs of dialects with no audio API."""
        entries = []
        for name in sorted(self._by_model):
            healthy = tuple(backend for backend in self._by_model[name] if backend.healthy)
            if healthy and (speech or not healthy[0].models[name].is_speech):
                entries.append(CatalogEntry(info=healthy[0].models[name], backends=healthy))
        if include_aliases:
            served = {entry.info.name: entry for entry in entries}
            for state in self.aliases():
                target = served.get(state.served or '')
                if target is not None and not state.shadowed:
                    entries.append(CatalogEntry(info=replace(target.info, name=state.alias),
                                                backends=target.backends, alias_for=target.info.name))
        return entries

    def model_info(self, model: str) -> ModelInfo | None:
        name = self.resolve(model)
        if name is None:
            return None
        for backend in self._by_model[name]:
            if backend.healthy:
                return backend.models[name]
        return None
