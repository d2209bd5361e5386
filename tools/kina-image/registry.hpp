// registry.hpp: a registry v2 client on libcurl: manifests with the full Accept
// list, bearer tokens from the WWW-Authenticate challenge, credentials from
// ~/.docker/config.json (auths, credHelpers, credsStore), verified and
// resumable blob downloads, several layers at once.
#pragma once

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <simdjson.h>

#include "archive_error.hpp"
#include "archive_reader.hpp"
#include "curl_lazy.hpp"
#include "image.hpp"
#include "import.hpp"
#include "kina/encoding.hpp"
#include "kina/home.hpp"
#include "kina/process.hpp"
#include "kina_config.hpp"
#include "manifest.hpp"
#include "pool.hpp"
#include "reference.hpp"
#include "store.hpp"
#include "temp.hpp"

namespace kina::image {

struct PullOptions {
  Platform platform;
  std::vector<std::string> insecure;  // HOST[:PORT] allowed over plain HTTP
  int jobs = 4;
  bool verify_diff_ids = false;  // decompress each layer at pull time (unpack always checks)
  // Cap on the blobs one pull downloads, summed from their descriptors before
  // any is fetched (--max-download, KINA_IMAGE_MAX_DOWNLOAD).
  uint64_t max_download = kDefaultMaxDownload;
  // A transfer slower than kStallBytesPerSecond for this long is abandoned
  // (--stall-timeout, KINA_IMAGE_STALL_TIMEOUT).
  std::chrono::milliseconds stall_timeout = std::chrono::seconds(60);
  static constexpr uint64_t kDefaultMaxDownload = 64ull << 30;  // 64 GiB
  static constexpr long kStallBytesPerSecond = 1024;
};

// Credentials for one registry and where they came from (for messages; the
// secret itself is never printed).
struct Credentials {
  std::string username, password, identity_token;
  std::string source = "none (anonymous)";
  bool empty() const { return username.empty() && password.empty() && identity_token.empty(); }
};

namespace detail {

inline std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The keys config.json may use for a registry host.
inline std::vector<std::string> auth_keys(const std::string& host) {
  if (host == kDockerHubRegistry || host == kDockerHubDomain || host == "index.docker.io")
    return {"https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io", "https://registry-1.docker.io"};
  return {host, "https://" + host, "http://" + host, "https://" + host + "/", "http://" + host + "/"};
}

inline Result<Credentials> run_cred_helper(const std::string& helper, const std::string& server) {
  for (char c : helper)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.'))
      return make_error(Exit::config, fmt::format("credential helper {}", shown(helper)), "invalid helper name");
  ProcessSpec spec;
  spec.argv = {"docker-credential-" + helper, "get"};
  spec.input = server;
  spec.timeout = std::chrono::seconds(30);
  auto r = run_process(spec);
  std::string src = fmt::format("credential helper docker-credential-{}", helper);
  if (!r) return make_error(Exit::config, src, r.error().why);
  if (!r->success()) {
    // "credentials not found" is an anonymous pull, not an error.
    if (r->out.find("not found") != std::string::npos || r->err.find("not found") != std::string::npos) {
      Credentials none;
      none.source = src + " (no credentials for " + server + ")";
      return none;
    }
    return make_error(Exit::config, src, fmt::format("{}", r->describe()));
  }
  simdjson::dom::parser p;
  simdjson::dom::object o;
  std::string_view user, secret;
  if (p.parse(r->out).get(o) != simdjson::SUCCESS || o["Secret"].get(secret) != simdjson::SUCCESS)
    return make_error(Exit::config, src, "output is not {\"Username\":..., \"Secret\":...}");
  Credentials c;
  if (o["Username"].get(user) != simdjson::SUCCESS) user = {};
  c.username = std::string(user);
  if (c.username == "<token>") {
    c.username.clear();
    c.identity_token = std::string(secret);
  } else {
    c.password = std::string(secret);
  }
  c.source = src;
  return c;
}

}  // namespace detail

// Looks host up in $DOCKER_CONFIG/config.json or ~/.docker/config.json.
inline Result<Credentials> find_credentials(const std::string& host) {
  fsys::path file;
  if (const char* dc = std::getenv("DOCKER_CONFIG"); dc && *dc) {
    file = fsys::path(dc) / "config.json";
  } else {
    auto home = user_home();
    if (!home) return Credentials{};
    file = *home / ".docker" / "config.json";
  }
  // A regular file only: a FIFO there would block the pull, a device feed it.
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return Credentials{};
    return os_error(fmt::format("reading {}", file.string()), errno, Exit::config);
  }
  struct stat sb {};
  if (::fstat(fd.get(), &sb) != 0 || !S_ISREG(sb.st_mode))
    return make_error(Exit::config, fmt::format("reading {}", file.string()), "not a regular file");
  ::fcntl(fd.get(), F_SETFL, ::fcntl(fd.get(), F_GETFL) & ~O_NONBLOCK);
  auto data = read_fd(fd.get(), fmt::format("reading {}", file.string()), 4u << 20);
  if (!data) return data.error();
  simdjson::dom::parser p;
  simdjson::dom::object root;
  if (p.parse(*data).get(root) != simdjson::SUCCESS)
    return make_error(Exit::config, fmt::format("reading {}", file.string()), "not a JSON object");
  auto keys = detail::auth_keys(host);
  simdjson::dom::object helpers;
  if (root["credHelpers"].get(helpers) == simdjson::SUCCESS) {
    for (const auto& k : keys) {
      std::string_view h;
      if (helpers[k].get(h) == simdjson::SUCCESS) return detail::run_cred_helper(std::string(h), k);
    }
  }
  simdjson::dom::object auths;
  if (root["auths"].get(auths) == simdjson::SUCCESS) {
    for (const auto& k : keys) {
      simdjson::dom::object a;
      if (auths[k].get(a) != simdjson::SUCCESS) continue;
      Credentials c;
      c.source = fmt::format("{} auths[{}]", file.string(), json::quote(k));
      std::string_view s;
      if (a["auth"].get(s) == simdjson::SUCCESS && !s.empty()) {
        auto raw = from_base64(s);
        if (!raw) return make_error(Exit::config, c.source, "\"auth\" is not base64");
        std::string up(raw->begin(), raw->end());
        size_t colon = up.find(':');
        if (colon == std::string::npos) return make_error(Exit::config, c.source, "\"auth\" is not base64 of USER:PASSWORD");
        c.username = up.substr(0, colon);
        c.password = up.substr(colon + 1);
      }
      if (a["username"].get(s) == simdjson::SUCCESS) c.username = std::string(s);
      if (a["password"].get(s) == simdjson::SUCCESS) c.password = std::string(s);
      if (a["identitytoken"].get(s) == simdjson::SUCCESS) c.identity_token = std::string(s);
      if (!c.empty()) return c;
    }
  }
  std::string_view store;
  if (root["credsStore"].get(store) == simdjson::SUCCESS && !store.empty())
    return detail::run_cred_helper(std::string(store), keys.front());
  return Credentials{};
}

// One HTTP exchange's outcome.
struct Response {
  long status = 0;
  std::map<std::string, std::string> headers;  // lowercase names
  std::string body;                            // error bodies and small documents
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Parses `Bearer realm="...",service="...",scope="..."`.
inline std::map<std::string, std::string> parse_challenge(std::string_view h, std::string& scheme) {
  std::map<std::string, std::string> out;
  size_t sp = h.find(' ');
  scheme = detail::lower(std::string(h.substr(0, sp)));
  if (sp == std::string_view::npos) return out;
  size_t i = sp + 1;
  while (i < h.size()) {
    while (i < h.size() && (h[i] == ' ' || h[i] == ',')) ++i;
    size_t eq = h.find('=', i);
    if (eq == std::string_view::npos) break;
    std::string key = detail::lower(std::string(h.substr(i, eq - i)));
    i = eq + 1;
    std::string val;
    if (i < h.size() && h[i] == '"') {
      ++i;
      while (i < h.size() && h[i] != '"') {
        if (h[i] == '\\' && i + 1 < h.size()) ++i;
        val += h[i++];
      }
      ++i;
    } else {
      while (i < h.size() && h[i] != ',') val += h[i++];
    }
    out[key] = val;
  }
  return out;
}

inline std::string url_host(const std::string& url) {
  size_t s = url.find("://");
  if (s == std::string::npos) return {};
  size_t start = s + 3;
  size_t end = url.find_first_of("/?#", start);
  std::string hostport = url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (size_t at = hostport.rfind('@'); at != std::string::npos) hostport = hostport.substr(at + 1);
  return detail::lower(hostport);
}

// A URL for messages: without its query and fragment, where a CDN's presigned
// URL carries its signature (a credential).
inline std::string url_for_message(const std::string& url) {
  size_t q = url.find_first_of("?#");
  return q == std::string::npos ? url : url.substr(0, q) + "?...";
}

class RegistryClient {
 public:
  RegistryClient(Reference ref, const PullOptions& opts) : ref_(std::move(ref)), opts_(opts) {
    host_ = ref_.registry_host();
    bool insecure = false;
    for (const auto& h : opts_.insecure)
      if (detail::lower(h) == detail::lower(host_) || detail::lower(h) == detail::lower(ref_.domain)) insecure = true;
    scheme_ = insecure ? "http" : "https";
  }

  std::string base() const { return fmt::format("{}://{}/v2/{}", scheme_, host_, ref_.path); }
  const std::string& host() const { return host_; }

  // A thread's request: follows redirects itself so that Authorization is only
  // ever sent to the registry host. `file` receives a 2xx body when given.
  struct FileSink {
    std::function<Status(const char*, size_t)> write;
    uint64_t limit = 0;     // bytes allowed in total (expected size)
    uint64_t written = 0;   // bytes already present (resume)
    bool overflow = false;
    bool range_refused = false;  // asked to resume, the server sent the whole blob
  };

  // A request body: bytes in memory, or `size` bytes of the file open at fd
  // (read with pread from offset 0, so a retry sends it again whole).
  struct Upload {
    std::string_view data;
    int fd = -1;
    uint64_t size = 0;
  };

  Result<Response> get(const std::string& url, const std::vector<std::string>& headers, FileSink* file = nullptr,
                       size_t max_body = 4u << 20) {
    return send("GET", url, headers, file, max_body, nullptr);
  }

  // HEAD, POST and PUT (push). Only GET and HEAD follow redirects; a 401 is
  // answered once by authenticating, then the request is sent again.
  Result<Response> send(const std::string& method, const std::string& url, const std::vector<std::string>& headers,
                        FileSink* file, size_t max_body, const Upload* up) {
    bool follow = method == "GET" || method == "HEAD";
    std::string cur = url;
    for (int hop = 0; hop < 6; ++hop) {
      bool same_host = url_host(cur) == detail::lower(host_);
      std::vector<std::string> h = headers;
      std::string auth = auth_header();
      if (same_host && !auth.empty()) h.push_back("Authorization: " + auth);
      auto r = perform(cur, h, file, max_body, method, up);
      if (!r) return r;
      if (follow && r->status >= 300 && r->status < 400 && r->status != 304) {
        std::string loc = r->header("location");
        if (loc.empty()) return make_error(Exit::unavailable, fmt::format("registry {}", host_), "redirect without Location");
        cur = resolve_location(cur, loc);
        if (cur.rfind("https://", 0) != 0 && !(scheme_ == "http" && cur.rfind("http://", 0) == 0))
          return make_error(Exit::policy, fmt::format("registry {}", host_), fmt::format("redirect to a non-HTTPS URL {}", shown(url_for_message(cur))));
        continue;
      }
      if (r->status == 401 && same_host && !tried_auth_.exchange(true)) {
        if (auto st = authenticate(r->header("www-authenticate")); !st) return st.error();
        --hop;
        continue;
      }
      return r;
    }
    return make_error(Exit::unavailable, fmt::format("registry {}", host_), "too many redirects");
  }

  Error http_error(const Response& r, const std::string& what) const {
    if (r.status == 401 || r.status == 403)
      return make_error(Exit::config, what,
                        fmt::format("registry {} answered {} (credentials tried: {})", host_, r.status, creds_source_),
                        fmt::format("check the credentials for {} in ~/.docker/config.json (docker login {})", ref_.domain, ref_.domain));
    std::string code;
    simdjson::dom::parser p;
    simdjson::dom::element e;
    if (p.parse(r.body).get(e) == simdjson::SUCCESS) {
      std::string_view c;
      if (e["errors"].at(0)["code"].get(c) == simdjson::SUCCESS) code = std::string(c);
    }
    if (r.status == 404)
      return make_error(Exit::no_input, what, fmt::format("not found on {}{}", host_, code.empty() ? "" : " (" + code + ")"));
    return make_error(Exit::unavailable, what, fmt::format("registry {} answered HTTP {}{}", host_, r.status, code.empty() ? "" : " (" + code + ")"));
  }

  // Tokens are asked for with pull and push rights (the registry's first
  // challenge, to a HEAD, names pull only).
  void for_push() { push_ = true; }
  std::string scheme() const { return scheme_; }
  std::string resolve(const std::string& from, const std::string& loc) const { return resolve_location(from, loc); }

  void load_credentials() {
    auto c = find_credentials(ref_.domain == kDockerHubDomain ? std::string(kDockerHubDomain) : host_);
    if (c) {
      creds_ = *c;
    } else {
      creds_error_ = c.error();
    }
    creds_source_ = c ? creds_.source : c.error().message();
  }

 private:
  std::string auth_header() {
    std::lock_guard<std::mutex> g(mu_);
    return auth_;
  }

  static std::string resolve_location(const std::string& from, const std::string& loc) {
    if (loc.find("://") != std::string::npos) return loc;
    size_t s = from.find("://");
    size_t path = from.find('/', s + 3);
    std::string origin = from.substr(0, path);
    if (!loc.empty() && loc[0] == '/') return origin + loc;
    std::string dir = from.substr(0, from.rfind('/') + 1);
    return dir + loc;
  }

  Status authenticate(const std::string& challenge) {
    if (creds_error_) return *creds_error_;
    std::string scheme;
    auto params = parse_challenge(challenge, scheme);
    if (scheme == "basic") {
      if (creds_.username.empty()) return {};  // the retry will answer 401 naming the source
      std::string up = creds_.username + ":" + creds_.password;
      std::lock_guard<std::mutex> g(mu_);
      auth_ = "Basic " + to_base64(reinterpret_cast<const uint8_t*>(up.data()), up.size());
      return {};
    }
    if (scheme != "bearer" || params["realm"].empty())
      return make_error(Exit::unavailable, fmt::format("registry {}", host_), fmt::format("unsupported authentication challenge {}", shown(challenge)));
    std::string realm = params["realm"];
    if (realm.rfind("https://", 0) != 0 && !(scheme_ == "http" && realm.rfind("http://", 0) == 0))
      return make_error(Exit::policy, fmt::format("registry {}", host_), fmt::format("token realm {} is not HTTPS", shown(realm)));
    std::unique_ptr<CURL, decltype(&curl::easy_cleanup)> c(curl::easy_init(), curl::easy_cleanup);
    auto esc = [&](const std::string& s) {
      char* e = curl::easy_escape(c.get(), s.c_str(), static_cast<int>(s.size()));
      std::string r = e ? e : "";
      curl::free(e);
      return r;
    };
    std::string scope = push_ ? fmt::format("repository:{}:pull,push", ref_.path)
                        : params.count("scope") ? params["scope"] : fmt::format("repository:{}:pull", ref_.path);
    std::string url = realm + (realm.find('?') == std::string::npos ? "?" : "&") + "scope=" + esc(scope);
    if (params.count("service")) url += "&service=" + esc(params["service"]);
    std::vector<std::string> h;
    if (!creds_.identity_token.empty()) {
      // An identity token is exchanged for an access token with a refresh grant; keep it simple: send as bearer.
      h.push_back("Authorization: Bearer " + creds_.identity_token);
    } else if (!creds_.username.empty()) {
      std::string up = creds_.username + ":" + creds_.password;
      h.push_back("Authorization: Basic " + to_base64(reinterpret_cast<const uint8_t*>(up.data()), up.size()));
    }
    auto r = perform(url, h, nullptr, 1u << 20);
    if (!r) return r.error();
    if (r->status == 401 || r->status == 403)
      return make_error(Exit::config, fmt::format("getting a token from {}", url_host(realm)),
                        fmt::format("registry {} token service answered {} (credentials tried: {})", host_, r->status, creds_source_),
                        fmt::format("check the credentials for {} in ~/.docker/config.json", ref_.domain));
    if (r->status != 200)
      return make_error(Exit::unavailable, fmt::format("getting a token from {}", url_host(realm)), fmt::format("HTTP {}", r->status));
    simdjson::dom::parser p;
    simdjson::dom::object o;
    std::string_view tok;
    if (p.parse(r->body).get(o) != simdjson::SUCCESS ||
        (o["token"].get(tok) != simdjson::SUCCESS && o["access_token"].get(tok) != simdjson::SUCCESS) || tok.empty())
      return make_error(Exit::unavailable, fmt::format("getting a token from {}", url_host(realm)), "no token in the answer");
    std::lock_guard<std::mutex> g(mu_);
    auth_ = "Bearer " + std::string(tok);
    return {};
  }

  struct Transfer {
    Response* resp;
    FileSink* file;
    size_t max_body;
    bool body_overflow = false;
    std::string werror;
  };

  static size_t on_header(char* p, size_t size, size_t n, void* ud) {
    auto* t = static_cast<Transfer*>(ud);
    std::string_view line(p, size * n);
    if (line.rfind("HTTP/", 0) == 0) {
      t->resp->headers.clear();
      size_t sp = line.find(' ');
      if (sp != std::string_view::npos) t->resp->status = std::atol(std::string(line.substr(sp + 1, 3)).c_str());
      return size * n;
    }
    size_t colon = line.find(':');
    if (colon != std::string_view::npos) {
      std::string name = detail::lower(std::string(line.substr(0, colon)));
      std::string_view v = line.substr(colon + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
      t->resp->headers[name] = std::string(v);
    }
    return size * n;
  }

  static size_t on_body(char* p, size_t size, size_t n, void* ud) {
    auto* t = static_cast<Transfer*>(ud);
    size_t len = size * n;
    long st = t->resp->status;
    if (t->file && (st == 200 || st == 206)) {
      FileSink& f = *t->file;
      if (f.written + len > f.limit) {
        f.overflow = true;
        return 0;  // abort: larger than the descriptor says
      }
      if (auto w = f.write(p, len); !w) {
        t->werror = w.error().message();
        return 0;
      }
      f.written += len;
      return len;
    }
    if (t->resp->body.size() + len > t->max_body) {
      t->body_overflow = true;
      return 0;
    }
    t->resp->body.append(p, len);
    return len;
  }

  struct UploadState {
    const Upload* up;
    uint64_t off;
    int err;
    static size_t read(char* buf, size_t size, size_t n, void* ud) {
      auto* u = static_cast<UploadState*>(ud);
      size_t want = std::min<uint64_t>(size * n, u->up->size - u->off);
      if (want == 0) return 0;
      if (u->up->fd < 0) {
        std::memcpy(buf, u->up->data.data() + u->off, want);
        u->off += want;
        return want;
      }
      for (;;) {
        ssize_t r = ::pread(u->up->fd, buf, want, static_cast<off_t>(u->off));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
          u->err = r < 0 ? errno : EIO;
          return CURL_READFUNC_ABORT;
        }
        u->off += static_cast<uint64_t>(r);
        return static_cast<size_t>(r);
      }
    }
  };

  Result<Response> perform(const std::string& url, const std::vector<std::string>& headers, FileSink* file, size_t max_body,
                           const std::string& method = "GET", const Upload* up = nullptr) {
    // One handle per thread, reset between requests: its connection cache
    // keeps the TCP/TLS connection to the registry for the next request.
    thread_local std::unique_ptr<CURL, decltype(&curl::easy_cleanup)> c(nullptr, curl::easy_cleanup);
    if (!c) {
      c.reset(curl::easy_init());
      if (!c) throw std::bad_alloc();
    } else {
      curl::easy_reset(c.get());
    }
    Response resp;
    Transfer t{&resp, file, max_body, false, {}};
    curl_slist* list = nullptr;
    for (const auto& h : headers) list = curl::slist_append(list, h.c_str());
    std::unique_ptr<curl_slist, decltype(&curl::slist_free_all)> guard(list, curl::slist_free_all);
    curl::easy_setopt(c.get(), CURLOPT_URL, url.c_str());
    curl::easy_setopt(c.get(), CURLOPT_HTTPHEADER, list);
    curl::easy_setopt(c.get(), CURLOPT_FOLLOWLOCATION, 0L);
    curl::easy_setopt(c.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    curl::easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
    curl::easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, 15L);
    // A trickle is a stall: under 1 KiB/s for the whole stall timeout ends the transfer.
    long stall_s = std::max<long>(1, static_cast<long>((opts_.stall_timeout.count() + 999) / 1000));
    curl::easy_setopt(c.get(), CURLOPT_LOW_SPEED_LIMIT, PullOptions::kStallBytesPerSecond);
    curl::easy_setopt(c.get(), CURLOPT_LOW_SPEED_TIME, stall_s);
    curl::easy_setopt(c.get(), CURLOPT_USERAGENT, "kina-image/" KINA_VERSION);
    curl::easy_setopt(c.get(), CURLOPT_HEADERFUNCTION, &RegistryClient::on_header);
    curl::easy_setopt(c.get(), CURLOPT_HEADERDATA, &t);
    curl::easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, &RegistryClient::on_body);
    curl::easy_setopt(c.get(), CURLOPT_WRITEDATA, &t);
    curl::easy_setopt(c.get(), CURLOPT_BUFFERSIZE, 131072L);
    if (file && file->written > 0) curl::easy_setopt(c.get(), CURLOPT_RESUME_FROM_LARGE, static_cast<curl_off_t>(file->written));
    UploadState us{up, 0, 0};
    static const Upload kEmpty{};
    if (!up) us.up = &kEmpty;
    if (method == "HEAD") {
      curl::easy_setopt(c.get(), CURLOPT_NOBODY, 1L);
    } else if (method == "POST") {
      curl::easy_setopt(c.get(), CURLOPT_POST, 1L);
      curl::easy_setopt(c.get(), CURLOPT_READFUNCTION, &UploadState::read);
      curl::easy_setopt(c.get(), CURLOPT_READDATA, &us);
      curl::easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(us.up->size));
    } else if (method == "PUT") {
      curl::easy_setopt(c.get(), CURLOPT_UPLOAD, 1L);
      curl::easy_setopt(c.get(), CURLOPT_READFUNCTION, &UploadState::read);
      curl::easy_setopt(c.get(), CURLOPT_READDATA, &us);
      curl::easy_setopt(c.get(), CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(us.up->size));
    }
    CURLcode rc = curl::easy_perform(c.get());
    if (rc == CURLE_ABORTED_BY_CALLBACK && us.err)
      return os_error(fmt::format("reading what is sent to {}", shown(url_for_message(url))), us.err, Exit::io);
    if (rc != CURLE_OK) {
      if (file && file->written > 0 && rc == CURLE_RANGE_ERROR) {
        file->range_refused = true;
        return make_error(Exit::unavailable, fmt::format("registry {}", url_host(url)), "resuming: the server does not support Range");
      }
      if (file && file->overflow)
        return make_error(Exit::data, fmt::format("downloading {}", shown(url_for_message(url))), "larger than the size in its descriptor");
      if (!t.werror.empty()) return make_error(Exit::io, fmt::format("downloading {}", shown(url_for_message(url))), t.werror);
      if (t.body_overflow)
        return make_error(Exit::data, fmt::format("reading {}", shown(url_for_message(url))), fmt::format("answer larger than {} bytes", max_body));
      if (rc == CURLE_OPERATION_TIMEDOUT)
        return make_error(Exit::temp_fail, fmt::format("registry {} stalled", url_host(url)),
                          fmt::format("less than {} bytes/s for {} s", PullOptions::kStallBytesPerSecond, stall_s),
                          "retry later, or raise --stall-timeout (KINA_IMAGE_STALL_TIMEOUT)");
      bool tls = rc == CURLE_SSL_CONNECT_ERROR || rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CERTPROBLEM ||
                 rc == CURLE_SSL_CACERT_BADFILE;
      return make_error(Exit::unavailable, fmt::format("registry {} unreachable", url_host(url)), curl::easy_strerror(rc),
                        tls ? fmt::format("a registry serving plain HTTP needs --insecure-registry {}", url_host(url)) : "");
    }
    long code = 0;
    curl::easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &code);
    resp.status = code;
    return resp;
  }

  Reference ref_;
  PullOptions opts_;
  std::string host_, scheme_;
  Credentials creds_;
  std::optional<Error> creds_error_;
  std::string creds_source_ = "none (anonymous)";
  std::mutex mu_;
  std::string auth_;
  std::atomic<bool> tried_auth_{false};
  bool push_ = false;
};

// Fetches a manifest or index by tag or digest, verifies it and stores it.
inline Result<std::pair<Digest, Document>> fetch_manifest(RegistryClient& c, const Store& store, const std::string& ref,
                                                          const std::optional<Digest>& expect, const std::string& what,
                                                          int64_t expect_size = -1) {
  auto r = c.get(fmt::format("{}/manifests/{}", c.base(), ref), {"Accept: " + std::string(media::kAccept)}, nullptr, kMaxManifestBytes);
  if (!r) return r.error();
  if (r->status == 404) return make_error(Exit::no_input, what, fmt::format("manifest unknown on {} (no such tag or digest)", c.host()));
  if (r->status != 200) return c.http_error(*r, what);
  if (expect_size >= 0 && static_cast<int64_t>(r->body.size()) != expect_size)
    return make_error(Exit::data, what, fmt::format("manifest is {} bytes, its descriptor says {}", r->body.size(), expect_size));
  Digest got = Digest::of_data(r->body);
  if (expect && !(got == *expect))
    return make_error(Exit::data, what, fmt::format("manifest has digest {}, expected {}", got.str(), expect->str()));
  if (auto dcd = r->header("docker-content-digest"); !dcd.empty() && dcd != got.str())
    return make_error(Exit::data, what, fmt::format("manifest has digest {} but the registry says {}", got.str(), shown(dcd)));
  auto doc = parse_document(r->body, what, r->header("content-type"));
  if (!doc) return doc.error();
  if (auto d = store.put_blob(r->body); !d) return d.error();
  return std::pair<Digest, Document>{got, std::move(*doc)};
}

// The file a blob is downloaded into, ingest/<hex>.partial, locked (flock on
// the file itself) by the one pull writing it; a concurrent pull of the same
// blob waits for it. Removed on every failure and by a signal; a later pull
// sweeps one a killed pull left.
class PartialBlob {
 public:
  static Result<PartialBlob> open(const Store& store, const Digest& d) {
    PartialBlob p;
    p.path_ = store.ingest_path(d);
    const Interrupts* intr = store.interrupts();
    auto guard = [&] { return intr ? intr->on_signal([path = p.path_] { ::unlink(path.c_str()); }) : Interrupts::Guard(); };
    for (int attempt = 0; attempt < 8; ++attempt) {
      // A file we create is ours at once (its removal registered in the same
      // step); one that exists belongs to another pull until we hold its lock.
      auto create = [&] {
        p.fd_.reset(::open(p.path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
        if (p.fd_.valid()) p.guard_ = guard();
      };
      intr ? intr->critical(create) : create();
      if (!p.fd_.valid()) {
        if (errno != EEXIST) return os_error(fmt::format("creating {}", p.path_.string()), errno, Exit::cant_create);
        p.fd_.reset(::open(p.path_.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC));
        if (!p.fd_.valid()) {
          if (errno == ENOENT) continue;
          return os_error(fmt::format("opening {}", p.path_.string()), errno, Exit::cant_create);
        }
      }
      int r = detail::lock_current(p.fd_.get(), p.path_, std::chrono::minutes(30));
      if (r < 0)
        return errno == EWOULDBLOCK ? make_error(Exit::temp_fail, fmt::format("blob {}", d.str()), "another pull has been downloading it for 30 min")
                                    : os_error(fmt::format("locking {}", p.path_.string()));
      if (r == 0) {  // its pull removed it (done or failed; or a sweep, if we made it): start again
        p.guard_.release();
        continue;
      }
      struct stat sb {};
      if (::fstat(p.fd_.get(), &sb) != 0 || !S_ISREG(sb.st_mode))
        return make_error(Exit::cant_create, fmt::format("creating {}", p.path_.string()), "not a regular file");
      if (!p.guard_.active()) p.guard_ = guard();
      p.owned_ = true;
      return p;
    }
    return make_error(Exit::temp_fail, fmt::format("blob {}", d.str()), "its partial download was removed 8 times meanwhile");
  }
  PartialBlob() = default;
  PartialBlob(PartialBlob&& o) noexcept : path_(std::move(o.path_)), fd_(std::move(o.fd_)), guard_(std::move(o.guard_)), owned_(o.owned_) {
    o.owned_ = false;
  }
  ~PartialBlob() { remove(); }
  int fd() const { return fd_.get(); }
  const fsys::path& path() const { return path_; }
  // Drops what was written (we still hold the lock: the name is ours).
  void remove() {
    if (!owned_) return;
    ::unlink(path_.c_str());
    owned_ = false;
    guard_.release();
    fd_.reset();
  }
  // Moves the verified file into the store.
  Status commit(const Store& store, const Digest& d) {
    if (::fsync(fd_.get()) != 0) return os_error(fmt::format("syncing {}", path_.string()), errno, Exit::io);
    auto op = [&]() -> Status {
      if (auto st = store.commit_file(path_, d); !st) return st;
      owned_ = false;
      guard_.release();
      return {};
    };
    Status st = store.interrupts() ? store.interrupts()->critical(op) : op();
    if (st) fd_.reset();
    return st;
  }

 private:
  fsys::path path_;
  UniqueFd fd_;
  Interrupts::Guard guard_;
  bool owned_ = false;
};

// Downloads one blob into the store: never more bytes than its descriptor
// says; a dropped connection is resumed with Range within the pull; size then
// digest are checked; the partial file goes on any failure.
inline Status download_blob(RegistryClient& c, const Store& store, const Descriptor& d) {
  if (store.has_blob(d.digest, d.size)) return {};
  std::string what = fmt::format("blob {}", d.digest.str());
  auto part = PartialBlob::open(store, d.digest);
  if (!part) return part.error();
  if (store.has_blob(d.digest, d.size)) return {};
  int fd = part->fd();
  const fsys::path& partial = part->path();
  // Whatever an earlier attempt left (a kill -9) is swept before we start.
  if (::ftruncate(fd, 0) != 0) return os_error(fmt::format("truncating {}", partial.string()), errno, Exit::io);
  Sha256 h;
  uint64_t have = 0;
  auto restart = [&]() -> Status {
    if (::ftruncate(fd, 0) != 0) return os_error(fmt::format("truncating {}", partial.string()), errno, Exit::io);
    ::lseek(fd, 0, SEEK_SET);
    h.reset();
    have = 0;
    return {};
  };
  int tries = 0;
  for (;;) {
    RegistryClient::FileSink sink;
    sink.limit = static_cast<uint64_t>(d.size);
    sink.written = have;
    sink.write = [&](const char* p, size_t n) -> Status {
      h.update(p, n);
      return write_all(fd, std::string_view(p, n), fmt::format("writing {}", partial.string()));
    };
    auto r = c.get(fmt::format("{}/blobs/{}", c.base(), d.digest.str()), {}, &sink, 64u << 10);
    if (!r && sink.range_refused && ++tries < 3) {
      // The server answers Range with the whole blob (libcurl refuses that
      // transfer): download from the start.
      if (auto st = restart(); !st) return st;
      continue;
    }
    if (!r) {
      // A dropped connection keeps what arrived; a retry resumes it.
      if (r.error().exit == Exit::unavailable && sink.written > have && ++tries < 3) {
        have = sink.written;
        continue;
      }
      return r.error();
    }
    if ((r->status == 200 && have > 0) || r->status == 416) {
      // The registry ignored Range and sent the whole blob (what we wrote
      // after the old bytes is a second copy), or our bytes are not a prefix
      // it knows: start over without Range.
      if (auto st = restart(); !st) return st;
      if (++tries < 3) continue;
    }
    if (r->status != 200 && r->status != 206) return c.http_error(*r, what);
    have = sink.written;
    break;
  }
  if (have != static_cast<uint64_t>(d.size))
    return make_error(Exit::data, what, fmt::format("{} bytes received, the descriptor says {}", have, d.size));
  Digest got = Digest::of(h.finish());
  if (!(got == d.digest)) return make_error(Exit::data, what, fmt::format("content has digest {} (partial download deleted)", got.str()));
  return part->commit(store, d.digest);
}

// The digest of a layer blob after decompression (gzip, zstd or none).
inline Result<Digest> diff_id_of(const fsys::path& blob, const std::string& what) {
  ArchiveReader a = archive_reader(ArchiveKind::stream);
  auto bad = [&] { return make_error(Exit::data, what, fmt::format("cannot decompress: {}", archive_error(a.get()))); };
  if (archive_read_open_filename(a.get(), blob.c_str(), 1 << 17) != ARCHIVE_OK) return bad();
  Sha256 h;
  archive_entry* e = nullptr;
  int r = archive_read_next_header(a.get(), &e);
  if (r == ARCHIVE_EOF) return Digest::of(h.finish());
  if (r != ARCHIVE_OK) return bad();
  std::vector<char> buf(1 << 17);
  for (;;) {
    la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
    if (n < 0) return bad();
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
  }
  return Digest::of(h.finish());
}

// Pulls ref: manifest (and index), config, layers (concurrently, skipping
// those already stored). Returns the digest the reference resolved to.
inline Result<Digest> pull_image(const Store& store, const Reference& ref, const PullOptions& opts) {
  if (auto st = load_curl(); !st) return st.error();
  RegistryClient c(ref, opts);
  c.load_credentials();
  std::string what = fmt::format("pulling {}", ref.str());
  std::optional<Digest> pinned;
  if (!ref.digest.empty()) pinned = *Digest::parse(ref.digest);
  auto top = fetch_manifest(c, store, ref.manifest_ref(), pinned, what);
  if (!top) return top.error();
  Document doc = std::move(top->second);
  for (int depth = 0; doc.index; ++depth) {
    if (depth >= 2) return make_error(Exit::data, what, "indexes nested too deeply");
    auto sel = select_platform(doc, opts.platform, what);
    if (!sel) return sel.error();
    auto m = fetch_manifest(c, store, sel->digest.str(), sel->digest, fmt::format("{}: manifest {}", what, sel->digest.str()),
                            sel->size);
    if (!m) return m.error();
    doc = std::move(m->second);
  }
  // The whole download is known before any layer is fetched: refuse it if it
  // is over the cap (a manifest may declare a petabyte).
  {
    uint64_t total = store.has_blob(doc.config.digest, doc.config.size) ? 0 : static_cast<uint64_t>(doc.config.size);
    for (const auto& l : doc.layers) {
      if (store.has_blob(l.digest, l.size)) continue;
      uint64_t sz = static_cast<uint64_t>(l.size);
      total = total > UINT64_MAX - sz ? UINT64_MAX : total + sz;
    }
    if (total > opts.max_download)
      return make_error(Exit::data, what,
                        fmt::format("its config and layers total {} bytes, over the download cap of {} bytes", total, opts.max_download),
                        "raise --max-download (KINA_IMAGE_MAX_DOWNLOAD) if the image is really that large");
  }
  if (doc.config.size > static_cast<int64_t>(kMaxConfigBytes))
    return make_error(Exit::data, what, "config larger than 8 MiB");
  if (auto st = download_blob(c, store, doc.config); !st) return st.error();
  auto cfg_bytes = store.read_blob(doc.config.digest, kMaxConfigBytes);
  if (!cfg_bytes) return cfg_bytes.error();
  auto cfg = parse_config(*cfg_bytes, fmt::format("{}: config {}", what, doc.config.digest.str()));
  if (!cfg) return cfg.error();
  if (cfg->diff_ids.size() != doc.layers.size())
    return make_error(Exit::data, what, fmt::format("{} layers but the config lists {} diff_ids", doc.layers.size(), cfg->diff_ids.size()));
  // Layers: a small pool of threads, each with its own connection.
  auto st = run_pool(doc.layers.size(), opts.jobs, [&](size_t i) -> Status {
    if (auto dl = download_blob(c, store, doc.layers[i]); !dl) return dl;
    if (!opts.verify_diff_ids) return {};
    // DiffID: the uncompressed stream must be what the config says.
    auto id = diff_id_of(store.blob_path(doc.layers[i].digest), fmt::format("layer {}", doc.layers[i].digest.str()));
    if (!id) return id.error();
    if (!(*id == cfg->diff_ids[i]))
      return make_error(Exit::data, fmt::format("layer {}", doc.layers[i].digest.str()),
                        fmt::format("uncompressed content has digest {} but the config says DiffID {}", id->str(), cfg->diff_ids[i].str()));
    return {};
  });
  if (!st) return st.error();
  return top->first;
}

}  // namespace kina::image
