"""The config: a TOML file read into frozen, typed settings, every mistake named by its key.

- `registry`, `collection_keys`: every key once (kind, default, help); `keys`: Key and Section.
- `kinds`: how each kind of value is checked and converted (and `check_url`, `to_utc_iso`).
- `settings`: the typed settings the rest of stacsync reads; defaults come from the registry.
- `read`: the registry walked over a parsed document; `load`: the Settings built from it
  (`load_settings`, `settings_from_dict`, `quick_settings`).
- `templates`, `patterns`: item titles and descriptions; `collection.match` regexes (RE2).
- `text`: TOML for `stacsync init` and the reference in docs/configuration.md.
"""
