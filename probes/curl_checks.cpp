// The http and tcp checks, with libcurl: one easy handle per check, a fresh
// connection each time, strict timeouts (connect and whole transfer), no
// redirect followed (a 3xx is a status like any other), no proxy from the
// environment, the body read up to kMaxBodyBytes and the transfer stopped
// there. tcp is a connect-only transfer: curl's resolver runs in its own
// thread, so that a slow DNS answer is bounded by the timeout as well.
#include <curl/curl.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <memory>
#include <string>

#include "checks.hpp"

namespace coupecircuit::probes {
namespace {

constexpr std::uint32_t kMatchLimit = 100'000;  // backtracking steps of one search
constexpr std::uint32_t kDepthLimit = 1'000;    // nested backtracking (heap frames)
constexpr std::uint32_t kHeapLimitKib = 4'096;

struct CurlDeleter {
  void operator()(CURL* handle) const noexcept { curl_easy_cleanup(handle); }
};
struct SlistDeleter {
  void operator()(curl_slist* list) const noexcept { curl_slist_free_all(list); }
};
using CurlHandle = std::unique_ptr<CURL, CurlDeleter>;

struct Transfer {
  std::string body;
  bool body_full = false;  // kMaxBodyBytes read: the transfer was stopped on purpose
  const std::atomic<bool>* stop = nullptr;
};

std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  const std::size_t bytes = size * count;
  const std::size_t room = kMaxBodyBytes - transfer->body.size();
  transfer->body.append(data, std::min(bytes, room));
  if (bytes >= room) {
    transfer->body_full = true;
    return 0;  // stops the transfer (CURLE_WRITE_ERROR)
  }
  return bytes;
}

int on_progress(void* user, curl_off_t /*download_total*/, curl_off_t /*downloaded*/, curl_off_t /*upload_total*/,
                curl_off_t /*uploaded*/) {
  const auto* transfer = static_cast<Transfer*>(user);
  return transfer->stop->load(std::memory_order_relaxed) ? 1 : 0;
}

std::uint32_t elapsed_us(std::int64_t started) {
  return static_cast<std::uint32_t>(std::min<std::int64_t>(monotonic_us() - started, UINT32_MAX));
}

// Settings shared by both checks.
CurlHandle new_handle(const ProbeSpec& spec, Transfer& transfer) {
  CurlHandle handle(curl_easy_init());
  if (!handle) return handle;
  CURL* curl = handle.get();
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // threads: no SIGALRM for DNS timeouts
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(spec.timeout_ms));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(spec.timeout_ms));
  curl_easy_setopt(curl, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(curl, CURLOPT_FORBID_REUSE, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_PROXY, "");  // checks go straight to the dependency
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &transfer);
  return handle;
}

std::string transfer_error(CURLcode code, const ProbeSpec& spec) {
  if (code == CURLE_OPERATION_TIMEDOUT) return "timeout after " + std::to_string(spec.timeout_ms) + " ms";
  return curl_easy_strerror(code);  // curl's own fixed text, never the server's
}

// One transfer with the settings shared by every check: configure(curl,
// transfer) adds the check's own, judge(curl, transfer, code) says what is
// wrong ("" when the dependency is up).
template <typename Configure, typename Judge>
CheckOutcome perform(const ProbeSpec& spec, const std::atomic<bool>& stop, Configure configure, Judge judge) {
  CheckOutcome outcome;
  const std::int64_t started = monotonic_us();
  Transfer transfer;
  transfer.stop = &stop;
  CurlHandle handle = new_handle(spec, transfer);
  if (!handle) {
    outcome.error = "cannot create a curl handle";
    return outcome;
  }
  configure(handle.get(), transfer);
  const CURLcode code = curl_easy_perform(handle.get());
  outcome.latency_us = elapsed_us(started);
  outcome.error = judge(handle.get(), transfer, code);
  outcome.up = outcome.error.empty();
  return outcome;
}

class HttpCheck final : public Check {
 public:
  explicit HttpCheck(ProbeSpec spec) : spec_(std::move(spec)) {
    for (const auto& header : spec_.http.headers) headers_.reset(curl_slist_append(headers_.release(), header.c_str()));
    if (spec_.http.body_regex.empty()) return;
    int error = 0;
    PCRE2_SIZE offset = 0;
    code_.reset(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(spec_.http.body_regex.data()), spec_.http.body_regex.size(),
                              0, &error, &offset, nullptr));
    match_context_.reset(pcre2_match_context_create(nullptr));
    if (match_context_) {
      pcre2_set_match_limit(match_context_.get(), kMatchLimit);
      pcre2_set_depth_limit(match_context_.get(), kDepthLimit);
      pcre2_set_heap_limit(match_context_.get(), kHeapLimitKib);
    }
  }

  CheckOutcome run(const std::atomic<bool>& stop) override {
    return perform(
        spec_, stop, [this](CURL* curl, Transfer& transfer) { configure(curl, transfer); },
        [this](CURL* curl, const Transfer& transfer, CURLcode code) { return judge(curl, transfer, code); });
  }

 private:
  void configure(CURL* curl, Transfer& transfer) const {
    curl_easy_setopt(curl, CURLOPT_URL, spec_.http.url.c_str());
    if (spec_.http.method == "HEAD") {
      curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
    } else if (spec_.http.method != "GET") {
      curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, spec_.http.method.c_str());
    }
    if (headers_) curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers_.get());
    curl_easy_setopt(curl, CURLOPT_USERAGENT, "coupecircuit-probes/" COUPECIRCUIT_VERSION);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
    if (spec_.http.insecure) {
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (!spec_.http.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, spec_.http.ca_file.c_str());
  }

  // Empty when the dependency is up: transfer done (or stopped once the
  // body read is full), status accepted, body matching.
  [[nodiscard]] std::string judge(CURL* curl, const Transfer& transfer, CURLcode code) const {
    if (code != CURLE_OK && !(code == CURLE_WRITE_ERROR && transfer.body_full)) return transfer_error(code, spec_);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (!status_accepted(spec_.http.statuses, status)) return "status " + std::to_string(status);
    return body_error(transfer.body);
  }

  struct CodeDeleter {
    void operator()(pcre2_code* code) const noexcept { pcre2_code_free(code); }
  };
  struct MatchContextDeleter {
    void operator()(pcre2_match_context* context) const noexcept { pcre2_match_context_free(context); }
  };
  struct MatchDataDeleter {
    void operator()(pcre2_match_data* data) const noexcept { pcre2_match_data_free(data); }
  };

  // Empty when the body matches (or is not checked).
  [[nodiscard]] std::string body_error(const std::string& body) const {
    if (spec_.http.body_regex.empty()) return {};
    if (!code_ || !match_context_) return "body pattern unusable";
    std::unique_ptr<pcre2_match_data, MatchDataDeleter> data(pcre2_match_data_create_from_pattern(code_.get(), nullptr));
    if (!data) return "out of memory matching the body";
    const int found = pcre2_match(code_.get(), reinterpret_cast<PCRE2_SPTR>(body.data()), body.size(), 0, 0, data.get(),
                                  match_context_.get());
    if (found >= 0) return {};
    if (found == PCRE2_ERROR_NOMATCH) return "body does not match";
    if (found == PCRE2_ERROR_MATCHLIMIT || found == PCRE2_ERROR_DEPTHLIMIT || found == PCRE2_ERROR_HEAPLIMIT) {
      return "body pattern too costly on this body (match limit)";
    }
    return "body pattern error " + std::to_string(found);
  }

  ProbeSpec spec_;
  std::unique_ptr<curl_slist, SlistDeleter> headers_;
  std::unique_ptr<pcre2_code, CodeDeleter> code_;
  std::unique_ptr<pcre2_match_context, MatchContextDeleter> match_context_;
};

class TcpCheck final : public Check {
 public:
  explicit TcpCheck(ProbeSpec spec) : spec_(std::move(spec)) {
    const bool ipv6 = spec_.tcp.host.find(':') != std::string::npos;
    url_ = "http://" + (ipv6 ? "[" + spec_.tcp.host + "]" : spec_.tcp.host) + ":" + std::to_string(spec_.tcp.port) + "/";
  }

  CheckOutcome run(const std::atomic<bool>& stop) override {
    return perform(
        spec_, stop,
        [this](CURL* curl, Transfer& /*transfer*/) {
          curl_easy_setopt(curl, CURLOPT_URL, url_.c_str());
          curl_easy_setopt(curl, CURLOPT_CONNECT_ONLY, 1L);
        },
        [this](CURL* /*curl*/, const Transfer& /*transfer*/, CURLcode code) {
          return code == CURLE_OK ? std::string() : transfer_error(code, spec_);
        });
  }

 private:
  ProbeSpec spec_;
  std::string url_;
};

}  // namespace

std::unique_ptr<Check> make_http_check(const ProbeSpec& spec) { return std::make_unique<HttpCheck>(spec); }
std::unique_ptr<Check> make_tcp_check(const ProbeSpec& spec) { return std::make_unique<TcpCheck>(spec); }

}  // namespace coupecircuit::probes
