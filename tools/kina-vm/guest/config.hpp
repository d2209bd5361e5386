// guest/config.hpp: kina-init's reader of /kina.conf, the config the host's
// GuestConfig (guest_config.hpp) writes into the initramfs: one "key value"
// line per entry, closed by "end".
// Guest code: static, libc only, no exceptions (kina-init is linked with
// -static -fno-exceptions); the unit tests read it on the host too.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kina::vm::guest {

struct Config {
  bool probe = false;
  std::string hostname, cwd, root = "/dev/vda", modules_disk, agent_port = "org.kina.agent";
  std::string machine_id, product_uuid, node_ip;
  std::vector<std::string> argv, env, nets, mounts;
};

// arg, env, net and mount repeat; any other key appears at most once, and an
// unknown key, a line after "end", a carriage return or a missing "end" is
// refused: a value that smuggled in a line of its own is not obeyed. On a
// refusal, ERROR says why and C is not to be used.
inline bool parse_config(std::string_view text, Config& c, std::string& error) {
  size_t pos = 0;
  bool ended = false;
  std::vector<std::string> seen;
  auto refuse = [&](std::string why) {
    error = std::move(why);
    return false;
  };
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) return refuse("the last line has no newline");
    std::string line(text.substr(pos, nl - pos));
    pos = nl + 1;
    if (ended) return refuse("a line after \"end\"");
    if (line == "end") {
      ended = true;
      continue;
    }
    if (line.find('\r') != std::string::npos) return refuse("a carriage return in: " + line);
    size_t sp = line.find(' ');
    std::string key = line.substr(0, sp), value = sp == std::string::npos ? "" : line.substr(sp + 1);
    bool repeats = key == "arg" || key == "env" || key == "net" || key == "mount";
    if (!repeats) {
      for (const auto& k : seen)
        if (k == key) return refuse("\"" + key + "\" given twice");
      seen.push_back(key);
    }
    if (key == "hostname") c.hostname = value;
    else if (key == "cwd") c.cwd = value;
    else if (key == "root") c.root = value;
    else if (key == "modules-disk") c.modules_disk = value;
    else if (key == "arg") c.argv.push_back(value);
    else if (key == "env") c.env.push_back(value);
    else if (key == "net") c.nets.push_back(value);
    else if (key == "probe") c.probe = true;
    else if (key == "mount") c.mounts.push_back(value);
    else if (key == "machine-id") c.machine_id = value;
    else if (key == "product-uuid") c.product_uuid = value;
    else if (key == "node-ip") c.node_ip = value;
    else return refuse("unknown key \"" + key + "\"");
  }
  if (!ended) return refuse("no \"end\" line (cut short?)");
  return true;
}

}  // namespace kina::vm::guest
