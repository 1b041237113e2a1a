/** The page's only stylesheet: readable on a phone, visible focus, no framework. */
export const css = `
:root { color-scheme: light dark; --fg: #1b1f24; --muted: #57606a; --bg: #f6f8fa; --card: #fff; --line: #d0d7de;
  --ok: #1a7f37; --bad: #cf222e; --warn: #9a6700; --accent: #0969da; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --muted: #9198a1; --bg: #0d1117; --card: #161b22; --line: #30363d;
  --ok: #3fb950; --bad: #f85149; --warn: #d29922; --accent: #4493f8; } }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; gap: .5rem 1rem; align-items: center; justify-content: space-between;
  padding: .75rem 1rem; background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.1rem; margin: 0; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem; display: grid; gap: 1rem;
  grid-template-columns: repeat(auto-fit, minmax(min(100%, 520px), 1fr)); }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1rem; min-width: 0; }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 1rem; margin: 0 0 .75rem; }
h3 { font-size: .95rem; margin: 1rem 0 .5rem; }
.stats { display: grid; grid-template-columns: repeat(auto-fit, minmax(120px, 1fr)); gap: .5rem; margin: 0 0 1rem; }
.stats div { border: 1px solid var(--line); border-radius: 6px; padding: .5rem; }
.stats dt { color: var(--muted); font-size: .8rem; }
.stats dd { margin: 0; font-size: 1.4rem; font-weight: 600; }
.table { overflow-x: auto; position: relative; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .8rem; border: 1px solid currentColor; white-space: nowrap; }
.ok { color: var(--ok); } .bad { color: var(--bad); } .warn { color: var(--warn); } .muted { color: var(--muted); }
.err { overflow-wrap: anywhere; }
form.inline { display: inline-flex; flex-wrap: wrap; gap: .35rem; align-items: center; margin: .15rem 0; }
button, input { font: inherit; }
button { padding: .4rem .8rem; border-radius: 6px; border: 1px solid var(--line); background: var(--bg); color: var(--fg); cursor: pointer; min-height: 2.25rem; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
input { padding: .4rem .5rem; border-radius: 6px; border: 1px solid var(--line); background: var(--card); color: var(--fg); min-height: 2.25rem; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.notice { grid-column: 1 / -1; padding: .6rem 1rem; border-radius: 8px; border: 1px solid var(--line); background: var(--card); }
.notice.bad { border-color: var(--bad); }
.endpoint { border-top: 1px solid var(--line); padding-top: .75rem; margin-top: .75rem; }
.endpoint:first-of-type { border-top: 0; margin-top: 0; padding-top: 0; }
.url { overflow-wrap: anywhere; font-family: ui-monospace, monospace; font-size: .85rem; }
.chart { margin: 0; }
.chart svg { width: 100%; height: 140px; display: block; }
.axis { display: flex; justify-content: space-between; font-size: .75rem; color: var(--muted); }
td.actions form.inline { display: flex; }
td.err { min-width: 9rem; }
.legend { display: flex; flex-wrap: wrap; gap: .25rem 1rem; font-size: .8rem; margin: .25rem 0 0; padding: 0; list-style: none; }
.legend span { display: inline-block; width: .8rem; height: .8rem; border-radius: 2px; margin-right: .3rem; vertical-align: -1px; }
.login { max-width: 24rem; margin: 10vh auto; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 1.5rem; }
.login label { display: block; margin-bottom: .35rem; font-weight: 600; }
.login input { width: 100%; margin-bottom: 1rem; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;
