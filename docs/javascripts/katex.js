// Typeset the TeX that pymdownx.arithmatex (generic mode) wraps in `.arithmatex` elements,
// with the KaTeX copy vendored under javascripts/vendor/katex (no network needed).
document$.subscribe(({ body }) => {
  for (const element of body.querySelectorAll(".arithmatex")) {
    renderMathInElement(element, {
      delimiters: [
        { left: "\\(", right: "\\)", display: false },
        { left: "\\[", right: "\\]", display: true },
      ],
      throwOnError: false,
    });
  }
});
