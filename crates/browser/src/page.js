// Injected into the page by Runtime.evaluate as `(<this function>)(op, args)` on every use:
// nothing stays behind in the page's globals for its scripts to see or to replace. The only
// trace is the data-ih-index attribute on the elements of the latest view, which is how a
// later click finds the element the model saw.
(function (op, args) {
  'use strict';
  const ATTR = 'data-ih-index';
  const INTERACTIVE = [
    'a[href]', 'button', 'input:not([type=hidden])', 'select', 'textarea', 'summary',
    '[role=button]', '[role=link]', '[role=checkbox]', '[role=radio]', '[role=tab]',
    '[role=menuitem]', '[role=menuitemcheckbox]', '[role=menuitemradio]', '[role=option]',
    '[role=switch]', '[role=combobox]', '[role=textbox]', '[role=searchbox]', '[role=slider]',
    '[role=spinbutton]', '[role=treeitem]', '[onclick]',
    '[contenteditable]:not([contenteditable=false])', '[tabindex]:not([tabindex="-1"])',
  ].join(',');
  const CORE = new Set(['A', 'BUTTON', 'INPUT', 'SELECT', 'TEXTAREA', 'SUMMARY']);
  const TEXT_INPUTS = new Set(['', 'text', 'search', 'email', 'url', 'tel', 'password', 'number',
    'date', 'datetime-local', 'month', 'time', 'week']);
  const doc = document;
  const root = doc.documentElement;
  const vw = Math.min(window.innerWidth, root ? root.clientWidth || window.innerWidth : window.innerWidth);
  const vh = Math.min(window.innerHeight, root ? root.clientHeight || window.innerHeight : window.innerHeight);

  const clean = (s) => (s || '').replace(/\s+/g, ' ').trim();
  const cut = (s, n) => (s.length > n ? s.slice(0, n - 1) + '…' : s);
  const quote = (s, n) => '"' + cut(clean(s), n).replace(/"/g, "'") + '"';

  // Every element, shadow DOM included, in document order.
  function allElements() {
    const out = [];
    const visit = (scope) => {
      for (const el of scope.querySelectorAll('*')) {
        out.push(el);
        if (el.shadowRoot) visit(el.shadowRoot);
      }
    };
    if (doc.documentElement) visit(doc);
    return out;
  }

  function deepElementFromPoint(x, y) {
    let el = doc.elementFromPoint(x, y);
    while (el && el.shadowRoot) {
      const inner = el.shadowRoot.elementFromPoint(x, y);
      if (!inner || inner === el) break;
      el = inner;
    }
    return el;
  }

  function containsDeep(outer, node) {
    for (let n = node; n; n = n.parentNode || n.host) if (n === outer) return true;
    return false;
  }

  function visibleRect(el) {
    const r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) return null;
    if (r.bottom <= 0 || r.right <= 0 || r.top >= vh || r.left >= vw) return null;
    if (el.checkVisibility && !el.checkVisibility({ opacityProperty: true, visibilityProperty: true })) return null;
    return r;
  }

  // A point inside the element's visible part where a click reaches it (not an overlay).
  function hitPoint(el, r) {
    const left = Math.max(r.left, 0), right = Math.min(r.right, vw);
    const top = Math.max(r.top, 0), bottom = Math.min(r.bottom, vh);
    for (const [fx, fy] of [[0.5, 0.5], [0.25, 0.5], [0.75, 0.5], [0.5, 0.25], [0.5, 0.75], [0.15, 0.15]]) {
      const x = left + (right - left) * fx, y = top + (bottom - top) * fy;
      const hit = deepElementFromPoint(x, y);
      if (!hit) continue;
      if (containsDeep(el, hit)) return { x, y };
      const label = hit.closest && hit.closest('label');
      if (label && label.control === el) return { x, y };
    }
    return null;
  }

  function editable(el) {
    if (!el) return false;
    if (el.tagName === 'INPUT') return TEXT_INPUTS.has((el.getAttribute('type') || '').toLowerCase()) && !el.readOnly && !el.disabled;
    if (el.tagName === 'TEXTAREA') return !el.readOnly && !el.disabled;
    return !!el.isContentEditable;
  }

  function labelText(el) {
    const aria = el.getAttribute('aria-label');
    if (aria) return aria;
    const by = el.getAttribute('aria-labelledby');
    if (by) {
      const t = by.split(/\s+/).map((id) => { const n = doc.getElementById(id); return n ? n.textContent : ''; }).join(' ');
      if (clean(t)) return t;
    }
    if (el.labels && el.labels.length) return el.labels[0].innerText;
    return '';
  }

  function shortHref(a) {
    const href = a.getAttribute('href') || '';
    try {
      const u = new URL(href, location.href);
      if (u.protocol === 'javascript:') return 'javascript:…';
      return u.origin === location.origin ? u.pathname + u.search + u.hash : u.href;
    } catch (e) {
      return href;
    }
  }

  function describe(el) {
    if (!el) return '(nothing)';
    const tag = el.tagName.toLowerCase();
    const attrs = [];
    let text = '';
    const type = (el.getAttribute('type') || '').toLowerCase();
    const role = el.getAttribute('role');
    if (role) attrs.push('role=' + role);
    if (tag === 'input' || tag === 'textarea') {
      if (type) attrs.push('type=' + type);
      const label = labelText(el) || el.getAttribute('title') || '';
      if (label) attrs.push('label=' + quote(label, 40));
      if (type === 'checkbox' || type === 'radio') {
        attrs.push(el.checked ? 'checked' : 'unchecked');
      } else if (['submit', 'button', 'reset', 'image'].includes(type)) {
        text = el.value || el.getAttribute('alt') || '';
      } else {
        if (el.placeholder) attrs.push('placeholder=' + quote(el.placeholder, 40));
        if (el.value) attrs.push('value=' + (type === 'password' ? '"••••"' : quote(el.value, 60)));
      }
    } else if (tag === 'select') {
      const label = labelText(el);
      if (label) attrs.push('label=' + quote(label, 40));
      const opts = Array.from(el.options);
      const sel = opts[el.selectedIndex];
      attrs.push('selected=' + (sel ? quote(sel.text, 40) : 'none'));
      const listed = opts.slice(0, 12).map((o, i) => i + ':' + quote(o.text, 24));
      text = 'options ' + listed.join(' ') + (opts.length > 12 ? ' (+' + (opts.length - 12) + ' more)' : '');
    } else {
      text = clean(el.innerText) || labelText(el) || el.getAttribute('title') || '';
      if (!text) {
        const img = el.querySelector('img[alt]');
        if (img) text = img.getAttribute('alt');
      }
      if (tag === 'a') attrs.push('href=' + quote(shortHref(el), 60));
      if (el.isContentEditable) attrs.push('editable');
      if (role === 'checkbox' || role === 'switch' || role === 'radio') {
        attrs.push(el.getAttribute('aria-checked') === 'true' ? 'checked' : 'unchecked');
      }
    }
    if (el.disabled || el.getAttribute('aria-disabled') === 'true') attrs.push('disabled');
    return '<' + tag + (attrs.length ? ' ' + attrs.join(' ') : '') + '>' + (clean(text) ? ' ' + clean(text) : '');
  }

  function findIndexed(index) {
    const sel = '[' + ATTR + '="' + index + '"]';
    const visit = (scope) => {
      const hit = scope.querySelector(sel);
      if (hit) return hit;
      for (const el of scope.querySelectorAll('*')) {
        if (el.shadowRoot) {
          const inner = visit(el.shadowRoot);
          if (inner) return inner;
        }
      }
      return null;
    };
    return doc.documentElement ? visit(doc) : null;
  }

  function knownIndices() {
    return allElements().filter((el) => el.hasAttribute(ATTR)).map((el) => Number(el.getAttribute(ATTR)))
      .sort((a, b) => a - b);
  }

  // The elements that may be interactive, shadow DOM included, in document order; and the
  // previous view's marks removed on the way.
  function candidates() {
    const out = [];
    const selector = INTERACTIVE + ',label';
    const visit = (scope) => {
      for (const el of scope.querySelectorAll('[' + ATTR + ']')) el.removeAttribute(ATTR);
      const own = scope.querySelectorAll(selector);
      const hosts = [];
      for (const el of scope.querySelectorAll('*')) if (el.shadowRoot) hosts.push(el);
      if (!hosts.length) {
        for (const el of own) out.push(el);
        return;
      }
      const isHost = new Set(hosts);
      const merged = Array.from(own).concat(hosts.filter((h) => !h.matches(selector)));
      merged.sort((a, b) => (a === b ? 0 : a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1));
      for (const el of merged) {
        if (el.matches(selector)) out.push(el);
        if (isHost.has(el)) visit(el.shadowRoot);
      }
    };
    if (doc.documentElement) visit(doc);
    return out;
  }

  function indexElements(capChars, labelCap) {
    const lines = [];
    let used = 0, omitted = 0, next = 0;
    const listed = new Set();
    for (const el of candidates()) {
      // a custom checkbox: the input is invisible, its label is what people click
      if (el.tagName === 'LABEL' && !el.matches(INTERACTIVE) && !(el.control && !visibleRect(el.control))) continue;
      if (!CORE.has(el.tagName)) {
        let nested = false;
        for (let p = el.parentElement; p; p = p.parentElement) if (listed.has(p)) { nested = true; break; }
        if (nested) continue;
      }
      const r = visibleRect(el);
      if (!r || !hitPoint(el, r)) continue;
      const line = '[' + next + '] ' + cut(describe(el), labelCap);
      if (used + line.length + 1 > capChars) { omitted++; continue; }
      el.setAttribute(ATTR, String(next));
      listed.add(el);
      lines.push(line);
      used += line.length + 1;
      next++;
    }
    return { lines, omitted };
  }

  // The page's rendered text as compact markdown. When it does not fit in `cap`, the part
  // from the viewport down is kept (and as much as fits of what is just above it).
  function markdown(cap) {
    const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD', 'svg', 'SVG', 'CANVAS',
      'IFRAME', 'OBJECT', 'EMBED', 'VIDEO', 'AUDIO', 'MAP', 'SELECT', 'OPTION', 'DATALIST', 'INPUT',
      'TEXTAREA', 'LINK', 'META']);
    const BLOCK = new Set(['ADDRESS', 'ARTICLE', 'ASIDE', 'BLOCKQUOTE', 'BODY', 'CAPTION', 'DD', 'DETAILS',
      'DIALOG', 'DIV', 'DL', 'DT', 'FIELDSET', 'FIGCAPTION', 'FIGURE', 'FOOTER', 'FORM', 'H1', 'H2', 'H3',
      'H4', 'H5', 'H6', 'HEADER', 'HGROUP', 'LEGEND', 'LI', 'MAIN', 'NAV', 'OL', 'P', 'SECTION', 'SUMMARY',
      'TABLE', 'TBODY', 'TFOOT', 'THEAD', 'TR', 'UL', 'MENU']);
    const above = [];
    let aboveLen = 0, droppedAbove = 0;
    const below = [];
    let belowLen = 0, truncated = false, seenBelow = false;
    let line = '', prefix = '', listDepth = 0;
    let where = 'straddle';

    const emit = (text) => {
      text = text.replace(/[ \t]+$/, '');
      if (!clean(text)) return;
      if (where === 'above' && !seenBelow) {
        above.push(text);
        aboveLen += text.length + 1;
        while (aboveLen > cap && above.length) { const d = above.shift(); aboveLen -= d.length + 1; droppedAbove += d.length + 1; }
        return;
      }
      seenBelow = true;
      if (belowLen + text.length + 1 > cap) {
        if (belowLen < cap / 2) below.push(cut(text, cap - belowLen));
        truncated = true;
        return;
      }
      below.push(text);
      belowLen += text.length + 1;
    };
    const flush = () => {
      const t = line.trim();
      if (t) emit(prefix + t);
      line = '';
      prefix = listDepth > 0 ? '  '.repeat(listDepth) : '';
    };
    const inline = (s) => {
      const t = s.replace(/\s+/g, ' ');
      if (!t.trim()) { if (line && !line.endsWith(' ')) line += ' '; return; }
      if (t.startsWith(' ') && line.endsWith(' ')) line += t.slice(1); else line += t;
    };

    const walkChildren = (node, depth) => {
      const kids = node.shadowRoot ? node.shadowRoot.childNodes
        : node.tagName === 'SLOT' ? (node.assignedNodes({ flatten: true }).length ? node.assignedNodes({ flatten: true }) : node.childNodes)
          : node.childNodes;
      for (const child of kids) {
        if (truncated) return;
        walk(child, depth + 1);
      }
    };

    const walk = (node, depth) => {
      if (truncated || depth > 400) return;
      if (node.nodeType === 3) { inline(node.data); return; }
      if (node.nodeType !== 1) return;
      const el = node;
      const tag = el.tagName;
      if (SKIP.has(tag)) return;
      if (el.checkVisibility && !el.checkVisibility({ visibilityProperty: true })) return;
      if (tag === 'BR') { flush(); return; }
      if (tag === 'HR') { flush(); emit('---'); return; }
      if (tag === 'IMG') {
        const alt = clean(el.getAttribute('alt'));
        if (alt) inline(' ![' + cut(alt, 80) + '] ');
        return;
      }
      if (tag === 'A' && el.hasAttribute('href')) {
        const text = clean(el.innerText);
        const href = shortHref(el);
        if (text) inline(' ' + (href.startsWith('javascript:') ? text : '[' + text + '](' + cut(href, 100) + ')') + ' ');
        return;
      }
      if (tag === 'PRE') {
        flush();
        const saved = where;
        const pos = position(el, where);
        where = pos === 'far-above' ? 'above' : pos;
        const body = el.innerText.replace(/\n+$/, '');
        if (body.trim()) emit('```\n' + body + '\n```');
        where = saved;
        return;
      }
      if (!BLOCK.has(tag)) {
        if (tag === 'TD' || tag === 'TH') { walkChildren(el, depth); inline(' | '); return; }
        walkChildren(el, depth);
        return;
      }
      flush();
      const savedWhere = where;
      where = position(el, where);
      if (where === 'far-above') {
        // far above the viewport: only counted (keeps a view near the end of a huge page fast)
        droppedAbove += el.textContent.length;
        where = savedWhere;
        return;
      }
      const savedDepth = listDepth;
      if (tag === 'UL' || tag === 'OL' || tag === 'MENU') listDepth++;
      if (/^H[1-6]$/.test(tag)) prefix = '#'.repeat(Number(tag[1])) + ' ';
      else if (tag === 'LI') prefix = '  '.repeat(Math.max(listDepth - 1, 0)) + '- ';
      else if (tag === 'BLOCKQUOTE') prefix = '> ';
      else if (tag === 'TR') prefix = '| ';
      walkChildren(el, depth);
      flush();
      listDepth = savedDepth;
      prefix = listDepth > 0 ? '  '.repeat(listDepth) : '';
      where = savedWhere;
    };

    // above the viewport, (partly) in it, or below its top: only straddling blocks need a rect
    const position = (el, parent) => {
      if (parent !== 'straddle') return parent;
      const r = el.getBoundingClientRect();
      if (r.bottom < -4 * vh) return 'far-above';
      if (r.bottom <= 0 && (r.height > 0 || r.top < 0)) return 'above';
      if (r.top >= 0) return 'below';
      return 'straddle';
    };

    if (doc.body) walk(doc.body, 0);
    flush();
    // fill what the part from the viewport down leaves of the cap with the text just above it
    const kept = [];
    let budget = cap - belowLen, omittedAbove = droppedAbove;
    for (let i = above.length - 1; i >= 0; i--) {
      if (above[i].length + 1 > budget) { for (let j = 0; j <= i; j++) omittedAbove += above[j].length + 1; break; }
      kept.unshift(above[i]);
      budget -= above[i].length + 1;
    }
    return { text: kept.concat(below).join('\n'), omittedAbove, truncated };
  }

  function scrollState() {
    const se = doc.scrollingElement || doc.documentElement;
    return {
      y: Math.round(window.scrollY), height: se ? se.scrollHeight : 0, viewport: vh, width: vw,
      inner: innerScroller() ? innerScroller().scrollTop : 0,
    };
  }

  // The scrollable element under the viewport's centre when the page itself does not scroll
  function innerScroller() {
    const se = doc.scrollingElement || doc.documentElement;
    if (se && se.scrollHeight > se.clientHeight + 1) return null;
    for (let el = deepElementFromPoint(vw / 2, vh / 2); el; el = el.parentElement || (el.getRootNode() && el.getRootNode().host)) {
      if (el.scrollHeight > el.clientHeight + 1) {
        const o = getComputedStyle(el).overflowY;
        if (o === 'auto' || o === 'scroll' || o === 'overlay') return el;
      }
    }
    return null;
  }

  function focused() {
    let el = doc.activeElement;
    while (el && el.shadowRoot && el.shadowRoot.activeElement) el = el.shadowRoot.activeElement;
    return el;
  }

  switch (op) {
    case 'view': {
      const elements = indexElements(args.elementsCap, args.labelCap);
      const content = markdown(args.contentCap);
      return {
        url: location.href, title: doc.title, elements: elements.lines, omittedElements: elements.omitted,
        content: content.text, omittedAbove: content.omittedAbove, truncated: content.truncated,
        scroll: scrollState(),
      };
    }
    case 'locate': {
      const el = findIndexed(args.index);
      if (!el) return { found: false, indices: knownIndices() };
      const r0 = el.getBoundingClientRect();
      if (r0.top < 0 || r0.left < 0 || r0.bottom > vh || r0.right > vw) {
        el.scrollIntoView({ block: 'center', inline: 'center', behavior: 'instant' });
      }
      const r = el.getBoundingClientRect();
      const visible = visibleRect(el);
      const hit = visible && hitPoint(el, visible);
      const cx = Math.min(Math.max((Math.max(r.left, 0) + Math.min(r.right, vw)) / 2, 0), vw - 1);
      const cy = Math.min(Math.max((Math.max(r.top, 0) + Math.min(r.bottom, vh)) / 2, 0), vh - 1);
      return {
        found: true, description: describe(el), x: hit ? hit.x : cx, y: hit ? hit.y : cy,
        visible: !!visible, covered: hit || !visible ? null : describe(deepElementFromPoint(cx, cy)),
        editable: editable(el), select: el.tagName === 'SELECT',
      };
    }
    case 'at': {
      const el = deepElementFromPoint(args.x, args.y);
      return { description: describe(el), editable: editable(el) };
    }
    case 'focused': {
      const el = focused();
      const isBody = !el || el === doc.body || el === doc.documentElement;
      return { editable: editable(el), description: isBody ? '(nothing focused)' : describe(el) };
    }
    case 'select': {
      const el = findIndexed(args.index);
      if (!el) return { error: 'missing', indices: knownIndices() };
      if (el.tagName !== 'SELECT') return { error: 'element [' + args.index + '] is ' + describe(el).split('>')[0] + '>, not a <select>; click it, then click the option' };
      const opts = Array.from(el.options);
      const listing = opts.slice(0, 30).map((o, i) => i + ':' + quote(o.text, 30)).join(' ') + (opts.length > 30 ? ' …' : '');
      let idx = -1;
      if (args.position !== null && args.position < opts.length) idx = args.position;
      else if (args.text !== null) {
        const want = clean(args.text).toLowerCase();
        idx = opts.findIndex((o) => clean(o.text) === clean(args.text));
        if (idx < 0) idx = opts.findIndex((o) => clean(o.text).toLowerCase() === want || o.value === args.text);
        if (idx < 0 && want) idx = opts.findIndex((o) => clean(o.text).toLowerCase().includes(want));
      }
      if (idx < 0) return { error: 'no option ' + JSON.stringify(args.text !== null ? args.text : args.position) + ' in [' + args.index + ']; its options are ' + listing };
      if (opts[idx].disabled) return { error: 'option ' + idx + ' ' + quote(opts[idx].text, 40) + ' is disabled' };
      if (el.disabled) return { error: 'the select [' + args.index + '] is disabled' };
      el.scrollIntoView({ block: 'nearest', behavior: 'instant' });
      el.focus();
      el.selectedIndex = idx;
      el.dispatchEvent(new Event('input', { bubbles: true }));
      el.dispatchEvent(new Event('change', { bubbles: true }));
      return { selected: idx, text: clean(opts[idx].text) };
    }
    case 'scrollState':
      return scrollState();
    case 'scrollEdge': {
      const target = innerScroller();
      const top = args.bottom ? 1e9 : 0;
      if (target) target.scrollTo({ top, behavior: 'instant' });
      else window.scrollTo({ top, behavior: 'instant' });
      return scrollState();
    }
    case 'quiet':
      return new Promise((resolve) => {
        let timer = null;
        const done = () => { observer.disconnect(); clearTimeout(cap); clearTimeout(timer); resolve(true); };
        const observer = new MutationObserver(() => { clearTimeout(timer); timer = setTimeout(done, args.quietMs); });
        if (doc.documentElement) observer.observe(doc.documentElement, { subtree: true, childList: true, attributes: true, characterData: true });
        timer = setTimeout(done, args.quietMs);
        const cap = setTimeout(done, args.maxMs);
      });
    case 'readyState':
      return { state: doc.readyState, url: location.href };
    default:
      throw new Error('unknown op ' + op);
  }
})
