# Sourced by the benchmarks that run `watchfloor demo` on a changed copy of the rules:
# `demo_pipeline <rules dir> <pipeline file>` writes the demo's pipeline with its `rules`
# pointing at that copy (the accounts and indicators stay the shipped ones).
demo_pipeline() {
  local rules=$1 out=$2 root
  root=$(pwd)
  sed -e "s|^rules = .*|rules = \"$rules\"|" \
      -e "s|^accounts = .*|accounts = \"$root/pipelines/demo-accounts.toml\"|" \
      -e "s|^indicators = .*|indicators = \"$root/indicators\"|" \
      -e "s|^playbooks = .*|playbooks = \"$root/playbooks\"|" \
      -e "s|^drills = .*|drills = \"$root/drills\"|" \
      pipelines/demo.toml > "$out"
}
