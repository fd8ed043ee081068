"""The app-wide stylesheet: a layout that holds from a 390 px phone to a 1280 px laptop.

Gradio 6 takes css at ``launch()`` (not ``Blocks()``), so it travels in ``demo.app.launch_kwargs()``, which
app.py, bench/ and the tests all launch with. Only layout is changed here, never colours: the theme stays
Gradio's. tests/demo/test_browser_layout.py measures what each rule is for.
"""
from __future__ import annotations

CSS = """
/* The page never scrolls sideways: a wide child scrolls inside its own box, a long unbroken string (a run id,
   a path) wraps where it must instead of widening the page. */
.gradio-container { max-width: 100%; overflow-x: clip; }
.prose, .prose * { overflow-wrap: break-word; }
.prose table { display: block; max-width: 100%; overflow-x: auto; }

/* UI words break at spaces only: labels, tab names and table headers never split inside a word. */
[data-testid="block-info"], .tab-container button, th, th * {
  word-break: normal !important;
  overflow-wrap: normal !important;
  hyphens: none;
}

/* A table header stays on one line, so its column is at least as wide as its header; the table scrolls inside
   its own box when the columns do not fit. */
th .header-content, th .header-content span { white-space: nowrap !important; text-overflow: clip !important; }
th .header-content { overflow: visible !important; }
.table-wrap, .virtual-table-viewport { max-width: 100%; overflow-x: auto; }

/* A dropdown's text stops short of its arrow (Gradio lays the arrow over the input's right end) and a value too
   long for the box ends in an ellipsis instead of running under the arrow; the open list shows it whole. */
.secondary-wrap:has(> .icon-wrap) > input[role="combobox"] {
  padding-right: var(--size-6) !important;
  text-overflow: ellipsis;
}

/* On a phone, the components of a row stack, each the full width: a dropdown shows its whole value. */
@media (max-width: 640px) {
  .row > *, .row > .form > * { flex: 1 1 100% !important; min-width: 100% !important; }
  .gradio-container { padding-left: var(--size-2) !important; padding-right: var(--size-2) !important; }
}
"""
