// keys.hpp: the audit signing key: keygen (sealed in the keystore), loading the signer and the verifier key.
#pragma once

#include <optional>
#include <string>

#include <fmt/format.h>

#include "kina/audit.hpp"
#include "kina/fs.hpp"
#include "kina/keystore.hpp"
#include "kina/note.hpp"
#include "kina/record.hpp"

#include "options.hpp"

namespace kina::audit_tool {

inline Result<std::optional<note::Verifier>> load_verifier(const std::string& given) {
  std::string text = given;
  if (!given.empty()) {
    if (given.find('+') == std::string::npos || fsys::exists(given)) {
      auto data = read_file(given, 4096);
      if (!data) return data.error();
      text = *data;
    }
  } else {
    auto dir = keys_dir();
    if (!dir) return dir.error();
    auto data = read_file(*dir / "audit.vkey", 4096);
    if (!data) {
      if (data.error().exit == Exit::no_input) return std::optional<note::Verifier>{};
      return data.error();
    }
    text = *data;
  }
  auto v = note::parse_vkey(text);
  if (!v) return v.error();
  return std::optional<note::Verifier>{*v};
}

inline Result<note::Signer> load_signer() {
  auto dir = keys_dir();
  if (!dir) return dir.error();
  fsys::path key = *dir / "audit.key";
  if (!fsys::exists(key))
    return make_error(Exit::no_input, "loading the audit signing key", fmt::format("{} does not exist", key.string()),
                      "create it with: kina-audit keygen");
  auto sealed = keystore::load(key, kSignerRole);
  if (!sealed) return sealed.error();
  return note::decode_signer(*sealed);
}

inline Status cmd_keygen(Options& o, Invocation&) {
  auto dir = keys_dir();
  if (!dir) return dir.error();
  fsys::path key = *dir / "audit.key", vkey = *dir / "audit.vkey";
  if (fsys::exists(key) && !o.force)
    return make_error(Exit::cant_create, "creating the audit signing key", fmt::format("{} already exists", key.string()),
                      "use --force to replace it (checkpoints signed with the old key then need the old vkey)");
  std::string name = o.key_name.empty() ? fmt::format("kina-audit/{}", audit::this_host()) : o.key_name;
  if (!note::valid_key_name(name))
    return usage_error(fmt::format("invalid key name {}", shown(name)), "no spaces or '+' allowed");
  auto src = keystore::choose_source();
  if (!src) return src.error();
  note::Signer signer = note::generate(name);
  auto sealed = keystore::seal(note::encode_signer(signer), *src, kSignerRole);
  if (!sealed) return sealed.error();
  std::string vk = signer.verifier().vkey();
  // Both or neither: a key whose vkey was not written (a full disk) would be
  // refused by the next keygen, and its checkpoints checked against no key.
  if (auto st = write_files_atomic({{key, *sealed, 0600}, {vkey, vk + "\n", 0644}}); !st) return st;
  audit::Event ev;
  ev.tool = "kina-audit", ev.action = "keygen", ev.target = vk;
  ev.details = {{"keystore", std::string(keystore::source_name(*src))}};
  auto path = log_path(o);
  if (path) {
    if (auto r = audit::Log(*path).append({ev}); !r) warn(kTool, "could not log keygen: " + r.error().message());
  }
  RecordWriter out;
  auto w = begin_record("AuditKey");
  w.field("name", name).field("vkey", vk).field("keyFile", key.string()).field("vkeyFile", vkey.string());
  w.field("keystore", keystore::source_name(*src));
  return print(out, w);
}

inline void keygen_options(CLI::App& c, Options& o) {
  c.add_option("--name", o.key_name, "Key name and checkpoint origin (default kina-audit/HOSTNAME)");
  c.add_flag("--force", o.force, "Replace an existing key");
}

}  // namespace kina::audit_tool
