#!/usr/bin/env python3
"""Checks the rendered docs of the `supervised` crate as a user reads them:
no example names `supervised_core` (users depend on `supervised`), and no
link text is left unresolved as a literal `[...]` or a path in an href.

Usage: scripts/check_docs.py target/doc/supervised
"""
import re,sys,pathlib,html
root=pathlib.Path(sys.argv[1])
bad=[]
for f in root.rglob('*.html'):
    t=f.read_text(errors='replace')
    # only what our crates wrote: stop at the implementations copied from other crates
    for marker in ('id="blanket-implementations"','id="synthetic-implementations"'):
        i=t.find(marker)
        if i!=-1: t=t[:i]
    for m in re.finditer(r'<pre[^>]*class="[^"]*rust[^"]*"[^>]*>(.*?)</pre>', t, re.S):
        code=html.unescape(re.sub(r'<[^>]+>','',m.group(1)))
        if 'supervised_core' in code:
            bad.append(f"{f}: example names supervised_core")
    for m in re.finditer(r'href="((?:crate|self|super)::[^"]*)"', t):
        bad.append(f"{f}: link to a path rustdoc left unresolved: {m.group(1)}")
    for m in re.finditer(r'<div class="docblock[^"]*">(.*?)</div>', t, re.S):
        text=re.sub(r'<pre.*?</pre>','',m.group(1),flags=re.S)
        text=re.sub(r'<a [^>]*>.*?</a>','',text,flags=re.S)
        # an attribute written as code, such as `#[supervised]`
        text=re.sub(r'<code>[^<]*#\[[^<]*</code>','',text)
        for u in re.findall(r'\[(?:<code>)?[A-Za-z_][A-Za-z0-9_:]*(?:</code>)?\]', text):
            bad.append(f"{f}: unresolved link text {html.unescape(re.sub('<[^>]+>','',u))}")
for b in sorted(set(bad)): print(b)
sys.exit(1 if bad else 0)
