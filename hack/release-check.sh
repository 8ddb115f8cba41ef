#!/usr/bin/env bash
# The release workflow's first step (.github/workflows/release.yaml): the git tag, the
# versions and the image name must agree before anything is published.
#
# Usage: hack/release-check.sh TAG OWNER
#   TAG    the pushed git tag, vX.Y.Z (e.g. $GITHUB_REF_NAME)
#   OWNER  the repository's owner (e.g. $GITHUB_REPOSITORY_OWNER); lower-cased, as image
#          names must be
# Environment: REGISTRY  the image registry's host (default: the GitHub container registry)
#
# Fails, naming the file and the field to change, unless X.Y.Z is Chart.yaml's version and
# appVersion, pyproject.toml's version and manifests/base/kustomization.yaml's newTag, and
# the chart's default image.repository (and the kustomization's newName) is
# REGISTRY/OWNER/modelmon, the image the workflow pushes. Prints version=X.Y.Z and image=REGISTRY/OWNER/modelmon, also to $GITHUB_OUTPUT
# when it is set.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REGISTRY=${REGISTRY:-ghcr.io}

die() { printf '[release-check] error: %s\n' "$*" >&2; exit 1; }

[[ $# -eq 2 ]] || die "usage: hack/release-check.sh TAG OWNER"
tag=$1
owner=${2,,}
[[ $tag =~ ^v([0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?)$ ]] ||
  die "tag '$tag' is not vX.Y.Z (e.g. v0.1.0): push a tag of that form"
version=${BASH_REMATCH[1]}
[[ -n $owner ]] || die "the repository owner is empty"
image=$REGISTRY/$owner/modelmon

# The first top-level value of KEY in a YAML file, quotes removed.
top_level() { # file key
  sed -n "s/^$2: *\"\{0,1\}\([^\"#]*[^\"# ]\)\"\{0,1\} *\(#.*\)\{0,1\}$/\1/p" "$1" | head -n 1
}

errors=()
expect() { # what found wanted fix
  [[ $2 == "$3" ]] || errors+=("$1 is '$2', release $tag by $owner wants '$3': $4")
}

chart=$REPO/helm/modelmon/Chart.yaml
values=$REPO/helm/modelmon/values.yaml
expect "helm/modelmon/Chart.yaml version" "$(top_level "$chart" version)" "$version" \
  "set it to $version (or tag v$(top_level "$chart" version))"
expect "helm/modelmon/Chart.yaml appVersion" "$(top_level "$chart" appVersion)" "$version" \
  "set it to \"$version\""
expect "pyproject.toml version" \
  "$(sed -n 's/^version *= *"\([^"]*\)".*/\1/p' "$REPO/pyproject.toml" | head -n 1)" "$version" \
  "set [project] version to \"$version\""
expect "manifests/base/kustomization.yaml newTag" \
  "$(sed -n 's/^ *newTag: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$REPO/manifests/base/kustomization.yaml" | head -n 1)" \
  "$version" "set it to $version"
expect "manifests/base/kustomization.yaml newName" \
  "$(sed -n 's/^ *newName: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$REPO/manifests/base/kustomization.yaml" | head -n 1)" \
  "$image" "set it to $image, the chart's default image.repository"
repository=$(awk '/^image:/ {in_image = 1; next}
                  in_image && /^[^ #]/ {exit}
                  in_image && /^  repository:/ {gsub(/"/, "", $2); print $2; exit}' "$values")
expect "helm/modelmon/values.yaml image.repository" "$repository" "$image" \
  "the chart's default image must be the one this workflow pushes ($image); set it there (and newName in manifests/base/kustomization.yaml), or publish from the repository of that owner"

if [[ ${#errors[@]} -gt 0 ]]; then
  printf '[release-check] error: %s\n' "${errors[@]}" >&2
  exit 1
fi
printf 'version=%s\nimage=%s\n' "$version" "$image" | tee -a "${GITHUB_OUTPUT:-/dev/null}"
