// Python's str methods over UTF-8 text, for the Jinja engine's filters and methods.
// Internal to model/jinja/.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace conclave::jinja::text {

/// str.strip / lstrip / rstrip: `chars` absent strips Python whitespace (str.isspace).
std::string strip(std::string_view s, const std::optional<std::string>& chars, bool left,
                  bool right);
/// str.split(sep, maxsplit) (sep absent: runs of whitespace, no empty parts); rsplit from
/// the right.
std::vector<std::string> split(std::string_view s, const std::optional<std::string>& sep,
                               std::int64_t maxsplit, bool from_right);
/// str.splitlines() (without keepends).
std::vector<std::string> splitlines(std::string_view s);
/// str.replace(old, new, count) (count < 0: all).
std::string replace(std::string_view s, std::string_view from, std::string_view to,
                    std::int64_t count);
/// str.find / rfind in code points (-1: absent).
std::int64_t find(std::string_view s, std::string_view sub, bool from_right);
/// str.count (non-overlapping).
std::int64_t count(std::string_view s, std::string_view sub);
std::string lower(std::string_view s);
std::string upper(std::string_view s);
std::string capitalize(std::string_view s);
/// str.title(): a letter after a non-letter is upper case, other letters lower case.
std::string title(std::string_view s);
/// Jinja's `title` filter: words split at whitespace and -({[< are capitalised.
std::string jinja_title(std::string_view s);
/// isalpha/isdigit/isalnum/isspace/islower/isupper as Python defines them.
bool is_all(std::string_view s, std::string_view what);
/// markupsafe's escape: & < > " ' as entities.
std::string html_escape(std::string_view s);
/// Jinja's wordcount: runs of word characters.
std::int64_t word_count(std::string_view s);
/// A JSON string literal as json.dumps writes it (`ensure_ascii`: non-ASCII as \uXXXX).
void append_json_string(std::string& out, std::string_view s, bool ensure_ascii);

}  // namespace conclave::jinja::text
