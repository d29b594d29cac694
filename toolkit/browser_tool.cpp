// GET with allowlist and redirects, then HTML to text (see the header).
#include "toolkit/browser_tool.h"

#include <spdlog/fmt/fmt.h>
#include <algorithm>
#include <boost/json.hpp>
#include <cctype>

#include "model/tool_spec_json.h"
#include "toolkit/http_fetch.h"

namespace conclave::toolkit {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

bool starts_with_ci(std::string_view s, size_t at, std::string_view word) {
  if (at + word.size() > s.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[at + i])) != word[i]) return false;
  }
  return true;
}

/// Where a redirect goes: absolute http:// URLs as they are, "/path" on the same origin.
std::string resolve(const std::string& base, const std::string& location) {
  if (location.rfind("http://", 0) == 0 || location.rfind("https://", 0) == 0) return location;
  std::string err;
  const auto p = parse_http_url(base, err);
  if (!p || location.empty() || location[0] != '/') return location;
  return fmt::format("{}://{}:{}{}", p->tls ? "https" : "http", p->host, p->port, location);
}

/// Past the end of a <script>, <style>, <noscript> or <head> element starting at `i`;
/// npos when no such element starts there.
size_t skip_element(std::string_view html, size_t i) {
  for (std::string_view name : {"script", "style", "noscript", "head"}) {
    if (!starts_with_ci(html, i + 1, name)) continue;
    const std::string close = "</" + std::string(name);
    size_t e = i;
    while (e != std::string_view::npos && !starts_with_ci(html, e, close))
      e = html.find('<', e + 1);
    if (e == std::string_view::npos) return html.size();
    const size_t gt = html.find('>', e);
    return gt == std::string_view::npos ? html.size() : gt + 1;
  }
  return std::string_view::npos;
}

}  // namespace

std::string html_to_text(std::string_view html) {
  std::string out;
  size_t i = 0;
  auto newline = [&] {
    if (!out.empty() && out.back() != '\n') out += '\n';
  };
  while (i < html.size()) {
    const char c = html[i];
    if (c == '<') {
      if (html.compare(i, 4, "<!--") == 0) {
        const size_t e = html.find("-->", i + 4);
        i = e == std::string_view::npos ? html.size() : e + 3;
        continue;
      }
      if (const size_t after = skip_element(html, i); after != std::string_view::npos) {
        i = after;
        continue;
      }
      {
        const size_t e = html.find('>', i);
        const std::string tag =
            lower(std::string(html.substr(i + 1, std::min<size_t>(12, e - i - 1))));
        for (const char* block : {"p", "/p", "br", "div", "/div", "li", "h1", "h2", "h3", "h4",
                                  "tr", "/tr", "title", "/title", "/h1", "/h2", "/h3"}) {
          const std::string b(block);
          if (tag.rfind(b, 0) == 0 && (tag.size() == b.size() ||
                                       !std::isalnum(static_cast<unsigned char>(tag[b.size()])))) {
            newline();
            break;
          }
        }
        i = e == std::string_view::npos ? html.size() : e + 1;
      }
      continue;
    }
    if (c == '&') {
      static const std::pair<std::string_view, std::string_view> entities[] = {
          {"&amp;", "&"}, {"&lt;", "<"},   {"&gt;", ">"},  {"&quot;", "\""},
          {"&#39;", "'"}, {"&apos;", "'"}, {"&nbsp;", " "}};
      bool done = false;
      for (auto [from, to] : entities) {
        if (html.compare(i, from.size(), from) == 0) {
          out += to;
          i += from.size();
          done = true;
          break;
        }
      }
      if (done) continue;
    }
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      if (!out.empty() && out.back() != ' ' && out.back() != '\n') out += ' ';
      ++i;
      continue;
    }
    out += c;
    ++i;
  }
  // Trim spaces around line breaks and at the ends.
  std::string tidy;
  for (size_t k = 0; k < out.size(); ++k) {
    if (out[k] == ' ' &&
        (k + 1 == out.size() || out[k + 1] == '\n' || tidy.empty() || tidy.back() == '\n'))
      continue;
    tidy += out[k];
  }
  while (!tidy.empty() && tidy.back() == '\n') tidy.pop_back();
  return tidy;
}

browser_tool::browser_tool(browser_config cfg) : cfg_(std::move(cfg)) {
  for (auto& h : cfg_.allowed_hosts) h = lower(h);
  def_.name = "browser";
  def_.description = "Fetch a web page (allowed hosts only) and return its text.";
  model::set_parameters(def_, boost::json::parse(R"({"type":"object","required":["url"],
    "properties":{"url":{"type":"string","description":"an http:// or https:// URL"}}})")
                                  .as_object());
}

bool browser_tool::allowed(const std::string& host) const {
  return std::find(cfg_.allowed_hosts.begin(), cfg_.allowed_hosts.end(), lower(host)) !=
         cfg_.allowed_hosts.end();
}

tool_result browser_tool::run(const boost::json::object& args, const run_context& ctx) {
  std::string url(args.at("url").as_string());
  for (int hop = 0; hop <= cfg_.max_redirects; ++hop) {
    std::string err;
    const auto parts = parse_http_url(url, err);
    if (!parts) return {outcome::error, fmt::format("{}: {}", url, err)};
    if (!allowed(parts->host))
      return {outcome::error,
              fmt::format("{}: host '{}' is not on the allowlist", url, parts->host)};
    const auto r = http_request("GET", url, "", "", cfg_.max_bytes, ctx);
    if (r.cancelled) return {outcome::cancelled, "cancelled"};
    if (r.timed_out)
      return {outcome::retryable,
              fmt::format("{}: timed out after {} ms", url, cfg_.timeout.count())};
    if (r.status == 0) {
      const bool too_large = r.error.find("larger than") != std::string::npos;
      return {too_large ? outcome::error : outcome::retryable, fmt::format("{}: {}", url, r.error)};
    }
    if (r.status >= 300 && r.status < 400 && !r.location.empty()) {
      url = resolve(url, r.location);
      continue;
    }
    if (r.status >= 500) return {outcome::retryable, fmt::format("{}: HTTP {}", url, r.status)};
    if (r.status >= 400) return {outcome::error, fmt::format("{}: HTTP {}", url, r.status)};
    std::string text = r.content_type.find("html") != std::string::npos ||
                               r.body.find("<html") != std::string::npos
                           ? html_to_text(r.body)
                           : r.body;
    if (text.size() > cfg_.max_text) {
      size_t cut = cfg_.max_text;
      while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80) --cut;
      text.resize(cut);
      text += "\n[truncated]";
    }
    return {outcome::ok, text};
  }
  return {outcome::error, fmt::format("more than {} redirects", cfg_.max_redirects)};
}

}  // namespace conclave::toolkit
