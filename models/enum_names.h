// enum_names.h: the spelling of a config enum's values, written once per enum, and the
// two conversions every config needs: text -> value (with an error listing the allowed
// spellings) and value -> text (for config.json, result.json and printed tables).
//
// An enum opts in by declaring, in its own namespace, a function found by
// argument-dependent lookup:
//
//   enum class Fusion { Scores, Outputs };
//   inline constexpr EnumName<Fusion> kFusionNames[] = {{Fusion::Scores, "scores"}, {Fusion::Outputs, "outputs"}};
//   constexpr std::span<const EnumName<Fusion>> enum_names(Fusion) { return kFusionNames; }
//
// The argument only selects the table; its value is ignored.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "error.h"

namespace hkt {

/// One value of a config enum and its spelling in JSON configs and outputs.
template <typename Enum>
struct EnumName {
  Enum value;
  std::string_view name;
};

/// The value spelled `text`, among enum_names(Enum{}). Throws hkt::Error
/// "<key> must be \"a\", \"b\" or \"c\", got \"<text>\"" when `text` is not one of them;
/// `key` names where the text came from (e.g. "config key 'model.pooling'").
template <typename Enum>
Enum parse_enum(std::string_view text, const std::string& key) {
  const auto names = enum_names(Enum{});
  for (const auto& n : names)
    if (n.name == text) return n.value;
  std::string allowed;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) allowed += i + 1 == names.size() ? " or " : ", ";
    allowed.append("\"").append(names[i].name).append("\"");
  }
  throw Error(key + " must be " + allowed + ", got \"" + std::string(text).append("\""));
}

/// The spelling of `value`. Throws hkt::Error for a value outside the table (only an
/// integer cast to the enum can make one).
template <typename Enum>
std::string enum_name(Enum value) {
  for (const auto& n : enum_names(Enum{}))
    if (n.value == value) return std::string(n.name);
  throw Error("enum_name: value " + std::to_string(static_cast<int>(value)) + " has no spelling");
}

}  // namespace hkt
