// init.cpp: kina-init, the /init of the initramfs kina builds for a node VM.
// Loads the virtio modules (in the order the host resolved from their
// depends=), mounts the root disk, sets the clock, hostname and static
// addresses, mounts the kernel's modules, writes the node's identity and the
// fixes a node image needs in a VM (guest_root.hpp), starts the agent inside
// the new root, then switches root and execs the workload as PID 1.
// Plain libc and syscalls only: it is linked statically.
// Guest code (tools/kina-vm/guest/): static, libc only, no exceptions (kina-init
// is linked -static -fno-exceptions); the host shares wire.hpp and transfer.hpp.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "agent.hpp"
#include "config.hpp"
#include "guest_root.hpp"

namespace {

using kina::vm::guest::Config;
using kina::vm::guest::parse_config;

void say(const std::string& msg) {
  std::string line = "kina-init: " + msg + "\n";
  (void)!::write(2, line.data(), line.size());
}

[[noreturn]] void die(const std::string& msg) {
  say("fatal: " + msg);
  ::sync();
  ::reboot(RB_POWER_OFF);
  for (;;) ::pause();
}

std::string errstr() { return std::strerror(errno); }

std::string read_text(const std::string& path) {
  std::string out;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

void mkdir_p(const std::string& path) {
  for (size_t i = 1; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') ::mkdir(path.substr(0, i).c_str(), 0755);
  }
}

// /kina.conf, or a fatal error naming what is wrong in it.
Config read_config() {
  Config c;
  std::string error;
  if (!parse_config(read_text("/kina.conf"), c, error)) die("/kina.conf: " + error);
  return c;
}

void load_modules() {
  std::string order = read_text("/modules/order");
  size_t pos = 0;
  while (pos < order.size()) {
    size_t nl = order.find('\n', pos);
    if (nl == std::string::npos) nl = order.size();
    std::string name = order.substr(pos, nl - pos);
    pos = nl + 1;
    if (name.empty()) continue;
    std::string path = "/modules/" + name;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("opening " + path + ": " + errstr());
    if (::syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST) say("loading " + name + ": " + errstr());
    ::close(fd);
  }
}

// Polls every 10 ms: under TCG each 100 ms of sleep is visible in boot time.
bool wait_for(const std::string& path, int tenths) {
  struct stat st {};
  for (int i = 0; i < tenths * 10; ++i) {
    if (::stat(path.c_str(), &st) == 0) return true;
    ::usleep(10000);
  }
  return ::stat(path.c_str(), &st) == 0;
}

void set_clock() {
  std::string cmdline = read_text("/proc/cmdline");
  size_t p = cmdline.find("kina.time=");
  if (p == std::string::npos) return;
  long long ms = std::atoll(cmdline.c_str() + p + 10);
  if (ms <= 0) return;
  struct timeval tv {};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  if (::settimeofday(&tv, nullptr) != 0) say("setting the clock: " + errstr());
}

std::string iface_with_mac(const std::string& mac) {
  for (int tries = 0; tries < 500; ++tries) {
    if (DIR* d = ::opendir("/sys/class/net")) {
      while (dirent* de = ::readdir(d)) {
        std::string n = de->d_name;
        if (n == "." || n == "..") continue;
        if (trim(read_text("/sys/class/net/" + n + "/address")) == mac) {
          ::closedir(d);
          return n;
        }
      }
      ::closedir(d);
    }
    ::usleep(10000);
  }
  return {};
}

bool set_flags_up(int sock, const std::string& ifname) {
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (::ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) return false;
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  return ::ioctl(sock, SIOCSIFFLAGS, &ifr) == 0;
}

void set_sockaddr(struct sockaddr* sa, in_addr_t addr) {
  auto* sin = reinterpret_cast<struct sockaddr_in*>(sa);
  sin->sin_family = AF_INET;
  sin->sin_addr.s_addr = addr;
}

// "MAC ADDR/PREFIX [GATEWAY]": the NIC is found by its MAC, whatever its name.
void configure_net(int sock, const std::string& spec) {
  char mac[64] = {0}, cidr[64] = {0}, gw[64] = {0};
  if (std::sscanf(spec.c_str(), "%63s %63s %63s", mac, cidr, gw) < 2) return say("bad net line: " + spec);
  std::string ifname = iface_with_mac(mac);
  if (ifname.empty()) return say(std::string("no network interface with MAC ") + mac);
  std::string c = cidr;
  size_t slash = c.find('/');
  int prefix = slash == std::string::npos ? 24 : std::atoi(c.c_str() + slash + 1);
  in_addr addr {};
  if (::inet_pton(AF_INET, c.substr(0, slash).c_str(), &addr) != 1) return say("bad address " + c);
  in_addr_t mask = prefix == 0 ? 0 : htonl(~((1u << (32 - prefix)) - 1));
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  set_sockaddr(&ifr.ifr_addr, addr.s_addr);
  if (::ioctl(sock, SIOCSIFADDR, &ifr) != 0) say("setting the address of " + ifname + ": " + errstr());
  set_sockaddr(&ifr.ifr_netmask, mask);
  if (::ioctl(sock, SIOCSIFNETMASK, &ifr) != 0) say("setting the netmask of " + ifname + ": " + errstr());
  if (!set_flags_up(sock, ifname)) say("bringing up " + ifname + ": " + errstr());
  if (gw[0] && std::strcmp(gw, "-") != 0) {
    in_addr g {};
    if (::inet_pton(AF_INET, gw, &g) != 1) return say(std::string("bad gateway ") + gw);
    struct rtentry rt {};
    set_sockaddr(&rt.rt_dst, INADDR_ANY);
    set_sockaddr(&rt.rt_genmask, INADDR_ANY);
    set_sockaddr(&rt.rt_gateway, g.s_addr);
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = ifname.data();
    if (::ioctl(sock, SIOCADDRT, &rt) != 0 && errno != EEXIST) say("adding the default route: " + errstr());
  }
}

void configure_network(const Config& c) {
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return say("socket: " + errstr());
  set_flags_up(sock, "lo");
  for (const auto& n : c.nets) configure_net(sock, n);
  ::close(sock);
}

// The virtio-serial port named NAME: /dev/vportNpM, found through sysfs.
int open_agent_port(const std::string& name) {
  for (int tries = 0; tries < 500; ++tries) {
    if (DIR* d = ::opendir("/sys/class/virtio-ports")) {
      while (dirent* de = ::readdir(d)) {
        std::string n = de->d_name;
        if (n[0] == '.') continue;
        if (trim(read_text("/sys/class/virtio-ports/" + n + "/name")) == name) {
          ::closedir(d);
          std::string dev = "/dev/" + n;
          wait_for(dev, 20);
          int fd = ::open(dev.c_str(), O_RDWR | O_NOCTTY);
          if (fd < 0) say("opening " + dev + ": " + errstr());
          return fd;
        }
      }
      ::closedir(d);
    }
    ::usleep(10000);
  }
  say("no virtio-serial port named " + name);
  return -1;
}

void move_mount(const char* from, const std::string& to) {
  mkdir_p(to);
  if (::mount(from, to.c_str(), nullptr, MS_MOVE, nullptr) != 0) say(std::string("moving ") + from + ": " + errstr());
}

// Whether execvpe would find PROG (in the new root, with the workload's PATH).
bool runnable(const std::string& prog, const std::vector<std::string>& env) {
  if (prog.find('/') != std::string::npos) return ::access(prog.c_str(), X_OK) == 0;
  std::string path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& e : env)
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string cand = path.substr(start, end - start) + "/" + prog;
    if (::access(cand.c_str(), X_OK) == 0) return true;
    start = end + 1;
  }
  errno = ENOENT;
  return false;
}

}  // namespace

int main() {
  if (::getpid() != 1) {
    say("must run as PID 1 (the initramfs /init)");
    return 64;
  }
  ::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  ::mount("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  ::mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  if (int fd = ::open("/dev/console", O_RDWR | O_NOCTTY); fd >= 0) {
    ::dup2(fd, 0), ::dup2(fd, 1), ::dup2(fd, 2);
    if (fd > 2) ::close(fd);
  }
  set_clock();
  Config cfg = read_config();
  if (cfg.probe) {
    // The host's accelerator probe: reaching /init is all it needs to see.
    ::reboot(RB_POWER_OFF);
  }
  load_modules();

  if (!wait_for(cfg.root, 100)) die("root disk " + cfg.root + " did not appear");
  mkdir_p("/newroot");
  if (::mount(cfg.root.c_str(), "/newroot", "ext4", 0, nullptr) != 0) die("mounting " + cfg.root + ": " + errstr());

  struct utsname u {};
  ::uname(&u);
  if (!cfg.modules_disk.empty()) {
    std::string target = std::string("/newroot/lib/modules/") + u.release;
    mkdir_p(target);
    if (!wait_for(cfg.modules_disk, 50) ||
        ::mount(cfg.modules_disk.c_str(), target.c_str(), "ext4", MS_RDONLY, nullptr) != 0)
      say("mounting the modules disk " + cfg.modules_disk + ": " + errstr());
  }
  // "TAG ro|rw GUESTDIR": a virtiofs share from the host.
  for (const auto& m : cfg.mounts) {
    char tag[64] = {0}, mode[4] = {0};
    int off = 0;
    if (std::sscanf(m.c_str(), "%63s %3s %n", tag, mode, &off) < 2 || off <= 0) {
      say("bad mount line: " + m);
      continue;
    }
    std::string target = "/newroot" + m.substr(static_cast<size_t>(off));
    mkdir_p(target);
    unsigned long flags = std::strcmp(mode, "ro") == 0 ? MS_RDONLY : 0;
    if (::mount(tag, target.c_str(), "virtiofs", flags, nullptr) != 0) say(std::string("mounting ") + tag + ": " + errstr());
  }
  if (!cfg.hostname.empty() && ::sethostname(cfg.hostname.data(), cfg.hostname.size()) != 0)
    say("setting the hostname: " + errstr());
  configure_network(cfg);
  int port = open_agent_port(cfg.agent_port);

  move_mount("/dev", "/newroot/dev");
  move_mount("/proc", "/newroot/proc");
  move_mount("/sys", "/newroot/sys");
  mkdir_p("/newroot/dev/pts");
  ::mount("devpts", "/newroot/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=0620,ptmxmode=0666");
  mkdir_p("/newroot/dev/shm");
  ::mount("tmpfs", "/newroot/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mkdir_p("/newroot/run");
  ::mount("tmpfs", "/newroot/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
  mkdir_p("/newroot/tmp");
  {
    // What Docker would give a kind node: identity files and VM fixes.
    int rfd = ::open("/newroot", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    kina::vm::GuestRoot groot(rfd, [](const std::string& m) { say(m); });
    if (rfd >= 0) ::close(rfd);
    if (groot.valid()) {
      kina::vm::NodeIdentity id{cfg.hostname, cfg.node_ip, cfg.machine_id, cfg.product_uuid};
      kina::vm::prepare_guest_root(groot, id);
    } else {
      say("opening the new root: " + errstr());
    }
  }

  // switch_root: the initramfs stays in memory (it is a few MiB).
  if (::chdir("/newroot") != 0 || ::mount(".", "/", nullptr, MS_MOVE, nullptr) != 0 || ::chroot(".") != 0 ||
      ::chdir("/") != 0)
    die("switching to the new root: " + errstr());

  // A workload that cannot be run fails the boot before the agent answers.
  if (!runnable(cfg.argv.empty() ? std::string("/sbin/init") : cfg.argv[0], cfg.env))
    die("exec " + (cfg.argv.empty() ? std::string("/sbin/init") : cfg.argv[0]) + ": " + errstr());

  if (port >= 0) {
    pid_t pid = ::fork();
    if (pid == 0) {
      ::setsid();
      ::_exit(agent_main(port));
    }
    ::close(port);
  }

  if (cfg.argv.empty()) cfg.argv.push_back("/sbin/init");
  std::vector<std::string> env = cfg.env;
  bool has_path = false;
  for (const auto& e : env) has_path = has_path || e.rfind("PATH=", 0) == 0;
  if (!has_path) env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  std::vector<char*> argv, envp;
  for (auto& a : cfg.argv) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (const auto& e : env)
    if (e.rfind("PATH=", 0) == 0) ::setenv("PATH", e.c_str() + 5, 1);  // execvpe searches our PATH
  if (!cfg.cwd.empty() && ::chdir(cfg.cwd.c_str()) != 0) say("chdir " + cfg.cwd + ": " + errstr());
  say("starting " + cfg.argv[0]);
  ::execvpe(argv[0], argv.data(), envp.data());
  die("exec " + cfg.argv[0] + ": " + errstr());
}
