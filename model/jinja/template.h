// A compiled Jinja template: the engine conclave renders chat templates with (no C++
// Jinja library is packaged on Debian 12). It covers what chat templates use; whatever
// it does not support is refused when the template is compiled, never skipped.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "model/jinja/value.h"

namespace conclave::jinja {

struct stmt;

class compiled_template {
 public:
  /// Compiles `source`; throws template_error ("line N: ...") for bad syntax or an
  /// unsupported tag, filter, test, function or method.
  explicit compiled_template(std::string_view source);

  /// Renders with `context` (a dict: the template's variables). Throws raised_error for
  /// the template's raise_exception(), template_error for any other failure (an undefined
  /// value used as an object, a type error, recursion deeper than 100 macro calls).
  std::string render(const value& context) const;

 private:
  std::shared_ptr<const std::vector<std::unique_ptr<stmt>>> body_;
};

}  // namespace conclave::jinja
