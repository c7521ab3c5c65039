// Accessibility checks run in the page by tests/integration/test_ui.py: page.evaluate(source, "name").
(check) => {
  const rendered = (el) => el.getClientRects().length > 0 && (!el.checkVisibility || el.checkVisibility());

  // Inputs, buttons, links and tabs without an accessible name (a label, aria-label, or their own text).
  const unlabelled = () => [...document.querySelectorAll("input, select, textarea, button, a[href], [role=tab]")]
    .filter(rendered)
    .filter((el) => !((el.labels && [...el.labels].map((l) => l.textContent).join("").trim())
      || el.getAttribute("aria-label")
      || (el.matches("button, a, [role=tab]") && el.textContent.trim())))
    .map((el) => el.outerHTML.slice(0, 100));

  // WCAG 2 contrast of every rendered text against its nearest opaque background: those under 4.5:1.
  const parse = (text) => {
    const m = text.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const p = m[1].split(/[\s,/]+/).filter(Boolean).map(Number);
    return [p[0], p[1], p[2], p.length > 3 ? p[3] : 1];
  };
  const channel = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = parse(getComputedStyle(el).backgroundColor);
      if (c && c[3] > 0.5) return c;
    }
    return [255, 255, 255, 1];
  };
  const lowContrast = () => {
    const low = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let node; (node = walker.nextNode());) {
      const el = node.parentElement;
      if (!node.textContent.trim() || !rendered(el) || el.closest(".visually-hidden, .skip")) continue;
      const a = luminance(parse(getComputedStyle(el).color)), b = luminance(background(el));
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      if (ratio < 4.5) low.push(`${ratio.toFixed(2)} ${el.tagName}: ${node.textContent.trim().slice(0, 40)}`);
    }
    return low;
  };

  // How far the page scrolls sideways (0 when it fits the viewport).
  const overflow = () => document.documentElement.scrollWidth - window.innerWidth;

  return { unlabelled, lowContrast, overflow }[check]();
}
