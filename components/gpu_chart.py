"""One GPU's live charts: utilisation, memory (used and total), temperature and power, as four panels of one
Plotly figure (one browser chart per GPU rather than four keeps a node of eight GPUs light).

`push(sample)` appends one reading in place: the browser gets only the new points (plotly's `extendTraces`,
with the window as its cap) and the figure dict on the server takes the same points, so a later full update
(a reconnect, a theme change) shows exactly what the browser shows. The live window is bounded: memory per
open page stays flat however long it stays open. `show_history(samples)` swaps the window for stored history;
`show_live()` comes back to the live window, which kept filling meanwhile.

A sample is a mapping with `taken_at` (a datetime) and the sidecar's field names: utilization_gpu,
memory_used_gb, memory_total_gb, temperature_gpu, power_draw_watts (a missing or non-numeric one is a gap).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from nicegui import ui

# (sample field, trace name, panel); memory total shares the memory panel, dotted.
TRACES: tuple[tuple[str, str, int], ...] = (
    ('utilization_gpu', 'Utilisation %', 1),
    ('memory_used_gb', 'Memory used GB', 2),
    ('memory_total_gb', 'Memory total GB', 2),
    ('temperature_gpu', 'Temperature °C', 3),
    ('power_draw_watts', 'Power W', 4),
)
PANELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ('Utilisation %', {'range': [0, 100]}),
    ('Memory GB', {'rangemode': 'tozero'}),
    ('Temperature °C', {}),
    ('Power W', {'rangemode': 'tozero'}),
)
DEFAULT_WINDOW = 120  # live points kept: 20 minutes at the default 10 s poll


class GpuChart:
    def __init__(self, *, dark: bool = False, window: int = DEFAULT_WINDOW) -> None:
        self.window = window
        self.live = True  # showing the live window (else stored history)
        self._samples: deque[Mapping[str, Any]] = deque(maxlen=window)
        self.figure: dict[str, Any] = _empty_figure(dark)
        self.plot = ui.plotly(self.figure).classes('w-full h-80').mark('gpu-chart')

    @property
    def points(self) -> int:
        """Points on show (per trace)."""
        return len(self.figure['data'][0]['x'])

    def push(self, sample: Mapping[str, Any]) -> None:
        self._samples.append(sample)
        if not self.live:
            return  # history is on show: the live window fills quietly
        x, ys = _point(sample)
        for trace, y in zip(self.figure['data'], ys, strict=True):
            trace['x'].append(x)
            trace['y'].append(y)
            del trace['x'][:-self.window], trace['y'][:-self.window]
        self.plot.run_plot_method('extendTraces', {'x': [[x] for _ in ys], 'y': [[y] for y in ys]},
                                  list(range(len(ys))), self.window)

    def seed(self, samples: Iterable[Mapping[str, Any]]) -> None:
        """Put older readings (stored history, when the page opens) before the live ones, in one update."""
        self._samples = deque([*samples, *self._samples], maxlen=self.window)
        if self.live:
            self._show(self._samples)

    def show_history(self, samples: Iterable[Mapping[str, Any]]) -> None:
        self.live = False
        self._show(list(samples))

    def show_live(self) -> None:
        self.live = True
        self._show(self._samples)

    def set_dark(self, dark: bool) -> None:
        self.figure['layout']['template'] = _template(dark)
        self.plot.update()

    def _show(self, samples: Iterable[Mapping[str, Any]]) -> None:
        points = [_point(sample) for sample in samples]
        for index, trace in enumerate(self.figure['data']):
            trace['x'] = [x for x, _ in points]
            trace['y'] = [ys[index] for _, ys in points]
        self.plot.update()


def _point(sample: Mapping[str, Any]) -> tuple[str, list[float | None]]:
    return _time(sample.get('taken_at')), [_number(sample.get(field)) for field, _, _ in TRACES]


def _time(value: object) -> str:
    """Plotly reads 'YYYY-MM-DD HH:MM:SS' as a date; the axis says the times are UTC."""
    when = value if isinstance(value, datetime) else datetime.now(UTC)
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime('%Y-%m-%d %H:%M:%S')


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _template(dark: bool) -> str:
    return 'plotly_dark' if dark else 'plotly_white'


def _empty_figure(dark: bool) -> dict[str, Any]:
    data = [{'type': 'scatter', 'mode': 'lines', 'name': name, 'x': [], 'y': [],
             'xaxis': f'x{panel if panel > 1 else ""}', 'yaxis': f'y{panel if panel > 1 else ""}',
             'line': {'dash': 'dot'} if field == 'memory_total_gb' else {}}
            for field, name, panel in TRACES]
    layout: dict[str, Any] = {
        'template': _template(dark), 'showlegend': False, 'height': 320,
        'margin': {'l': 48, 'r': 12, 't': 12, 'b': 32},
        'grid': {'rows': 2, 'columns': 2, 'pattern': 'independent', 'roworder': 'top to bottom'},
        'hovermode': 'x unified', 'paper_bgcolor': 'rgba(0,0,0,0)',
    }
    for index, (title, extra) in enumerate(PANELS, start=1):
        suffix = str(index) if index > 1 else ''
        layout[f'xaxis{suffix}'] = {'type': 'date', 'tickfont': {'size': 10}}
        if index > 2:  # the bottom row says what the times are
            layout[f'xaxis{suffix}']['title'] = {'text': 'UTC', 'font': {'size': 10}}
        layout[f'yaxis{suffix}'] = {'title': {'text': title, 'font': {'size': 11}}, 'tickfont': {'size': 10},
                                    **extra}
    return {'data': data, 'layout': layout, 'config': {'displayModeBar': False, 'responsive': True}}
