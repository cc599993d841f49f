#!/usr/bin/env bash
# Rebuilds web/static/vendor/ (the conversation's Markdown renderer and code highlighter) from
# the npm registry, reproducibly: pinned versions, each package tarball checked against its
# SHA-256 below, then each file taken from it checked against web/static/vendor/SHA256SUMS.
#   scripts/vendor-js.sh          fetch, check, and write the files
#   scripts/vendor-js.sh --check  only check the committed files against SHA256SUMS
# To move to a new version: change it and its tarball's sum here, run, and write the new
# files' sums into SHA256SUMS (`sha256sum *.js *.css *.LICENSE`) after reading the diff.
# Needs npm (Debian's `npm`). The app serves these files itself: the page loads nothing from
# other sites (web/local_only.py).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=web/static/vendor

# package@version  sha256 of its npm tarball
PACKAGES=(
  "markdown-it@15.0.3 98a7453983ab0e268c17dbd5260bf7190ba46b4cca912327fc1c1a2578e4b56d"
  "@highlightjs/cdn-assets@11.12.0 b8a006d30f45afe783072569f3d69c5b60c0e7b9ca28cd474e12f2584e2a3bd9"
)
# file in the tarball  ->  file in $OUT
FILES=(
  "markdown-it-15.0.3.tgz package/dist/browser/markdown-it.umd.min.js markdown-it.min.js"
  "markdown-it-15.0.3.tgz package/LICENSE markdown-it.LICENSE"
  "highlightjs-cdn-assets-11.12.0.tgz package/highlight.min.js highlight.min.js"
  "highlightjs-cdn-assets-11.12.0.tgz package/LICENSE highlight.LICENSE"
  "highlightjs-cdn-assets-11.12.0.tgz package/styles/github-dark.min.css highlight-dark.min.css"
)

if [ "${1:-}" = "--check" ]; then
  (cd "$OUT" && sha256sum --check --quiet SHA256SUMS) && echo "vendored files match SHA256SUMS"
  exit
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for entry in "${PACKAGES[@]}"; do
  read -r spec sum <<<"$entry"
  tarball=$(cd "$work" && npm pack --silent "$spec")
  echo "$sum  $work/$tarball" | sha256sum --check --quiet
done
for entry in "${FILES[@]}"; do
  read -r tarball inside target <<<"$entry"
  tar -xzf "$work/$tarball" -C "$work" "$inside"
  cp "$work/$inside" "$OUT/$target"
done
(cd "$OUT" && sha256sum --check --quiet SHA256SUMS) && echo "vendored files rebuilt and checked"
