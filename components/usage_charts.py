"""Usage charts: tokens per day (prompt and completion stacked) and tokens by model (a donut).

The figures are plain Plotly dicts built from core.quotas.usage's results, so they can be checked without a browser;
`UsageCharts` owns the two plots and updates them in place when the range or the data changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nicegui import ui

from core.quotas.usage import DayUsage, ModelUsage

PROMPT_COLOR = '#6366f1'
COMPLETION_COLOR = '#22c55e'
CONFIG = {'displaylogo': False, 'responsive': True}


class UsageCharts:
    def __init__(self, *, dark: bool) -> None:
        self._dark = dark
        with ui.row().classes('w-full gap-4 flex-nowrap max-md:flex-wrap'):
            self.daily = ui.plotly(daily_tokens_figure([], dark=dark)).classes('w-full md:w-2/3 h-80') \
                .mark('usage-daily-chart')
            self.models = ui.plotly(model_usage_figure([], dark=dark)).classes('w-full md:w-1/3 h-80') \
                .mark('usage-model-chart')

    def show(self, days: Sequence[DayUsage], models: Sequence[ModelUsage]) -> None:
        self.daily.figure = daily_tokens_figure(days, dark=self._dark)
        self.models.figure = model_usage_figure(models, dark=self._dark)
        self.daily.update()
        self.models.update()


def daily_tokens_figure(days: Sequence[DayUsage], *, dark: bool) -> dict[str, Any]:
    x = [d.day.isoformat() for d in days]
    figure: dict[str, Any] = {
        'data': [
            {'type': 'bar', 'name': 'Prompt', 'x': x, 'y': [d.prompt_tokens for d in days],
             'marker': {'color': PROMPT_COLOR}},
            {'type': 'bar', 'name': 'Completion', 'x': x, 'y': [d.completion_tokens for d in days],
             'marker': {'color': COMPLETION_COLOR}},
        ],
        'layout': _layout('Tokens per day (UTC)', dark) | {
            'barmode': 'stack',
            'xaxis': {'type': 'date', 'tickformat': '%b %d'},
            'yaxis': {'title': {'text': 'tokens'}, 'rangemode': 'tozero'},
            'legend': {'orientation': 'h', 'y': -0.2, 'traceorder': 'normal'},
        },
        'config': CONFIG,
    }
    if days and not any(d.prompt_tokens or d.completion_tokens for d in days):
        figure['layout']['annotations'] = [_empty_note()]
    return figure


def model_usage_figure(models: Sequence[ModelUsage], *, dark: bool) -> dict[str, Any]:
    layout = _layout('Tokens by model', dark) | {'showlegend': True, 'legend': {'orientation': 'h', 'y': -0.1}}
    if not models:
        return {'data': [], 'config': CONFIG, 'layout': layout | {
            'annotations': [_empty_note()], 'xaxis': {'visible': False}, 'yaxis': {'visible': False}}}
    return {
        'data': [{'type': 'pie', 'hole': 0.45, 'labels': [m.model for m in models],
                  'values': [m.tokens for m in models], 'customdata': [m.requests for m in models],
                  'hovertemplate': '%{label}<br>%{value:,} tokens<br>%{customdata:,} requests<extra></extra>',
                  'textinfo': 'percent', 'sort': False}],
        'layout': layout,
        'config': CONFIG,
    }


def _layout(title: str, dark: bool) -> dict[str, Any]:
    return {'title': {'text': title, 'font': {'size': 14}}, 'template': 'plotly_dark' if dark else 'plotly_white',
            'margin': {'l': 50, 'r': 10, 't': 40, 'b': 40}, 'paper_bgcolor': 'rgba(0,0,0,0)'}


def _empty_note() -> dict[str, Any]:
    return {'text': 'No requests in this range', 'showarrow': False, 'xref': 'paper', 'yref': 'paper',
            'x': 0.5, 'y': 0.5, 'font': {'size': 14}}
