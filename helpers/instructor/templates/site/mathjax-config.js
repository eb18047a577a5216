MathJax.Hub.Config({
  tex2jax: {
    inlineMath: [["$", "$"], ["\\(", "\\)"]],
    displayMath: [["$$", "$$"], ["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
    ignoreClass: "tex2jax_ignore|course-nav|course-banner"
  },
  TeX: {equationNumbers: {autoNumber: "AMS", useLabelIds: true}},
  "HTML-CSS": {
    availableFonts: [],
    preferredFont: null,
    webFont: "STIX-Web",
    imageFont: null,
    linebreaks: {automatic: true}
  },
  displayAlign: "center",
  messageStyle: "none",
  showMathMenu: false,
  menuSettings: {zoom: "None"}
});
MathJax.Hub.Queue(function () { document.body.setAttribute("data-mathjax", "done"); });
