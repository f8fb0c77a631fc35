// config.h: experiment configuration as JSON: one document with every key and its
// default (docs/config.md explains each), user files and --set overrides merged onto
// it, and strict checking: an unknown key, or a value of the wrong type, is an error
// naming the key. The resolved document is what a run writes to config.json.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "classifier.h"

namespace hkt::config {

using Json = nlohmann::json;

/// The default configuration: every key that exists, with its default value.
const Json& defaults();

/// defaults() with `overrides` merged in, key by key (objects recursively). Throws
/// hkt::Error "unknown config key 'model.d_modle'" for a key the defaults lack, and
/// "config key 'train.lr' must be a number, got a string" for a type mismatch (an
/// integer default takes only integers; a number default takes any number; lists and
/// strings replace the default whole).
Json merge(const Json& overrides, const std::string& where = "config");

/// Applies "--set key=value" items: key is a dotted path ("model.hkt.levels"); value is
/// parsed as JSON when it parses (3, 0.5, true, "x", [1, 0, 0]) and taken as a string
/// otherwise. Same errors as merge, naming the --set item.
Json apply_sets(Json config, const std::vector<std::string>& sets);

/// Reads a JSON file and merges it onto the defaults. Errors name the file (and the
/// line and column of a JSON syntax error).
Json load_file(const std::string& path);

/// Parses JSON text, refusing a key that appears twice in one object at any depth
/// (nlohmann::json, like most parsers, would keep the last one silently) and nesting
/// deeper than 32 levels: throws hkt::Error "WHERE: the key 'train.steps' appears twice",
/// "WHERE: nested deeper than 32 levels (at 'experiment.name[][]...')", or "WHERE: not
/// valid JSON: ...".
Json parse_json(const std::string& text, const std::string& where);
/// parse_json of a whole file; WHERE is its path. Throws when it cannot be read.
Json read_json_file(const std::string& path);

/// The model part as a ClassifierConfig, given the data's vocabulary/features/classes.
/// Keys with a fixed set of values become enums here (models/enum_names.h); another
/// value is an hkt::Error naming the key and the choices. Sizes out of range (e.g.
/// n_heads not dividing d_model) are refused later, by the Classifier's own checks.
ClassifierConfig model_config(const Json& config, std::int64_t vocab_size, std::int64_t num_features,
                              std::int64_t num_classes, std::int64_t max_len);

/// The number of attention levels of config's model: 1 for model.attention "mha",
/// model.hkt.levels for "hkt". Throws hkt::Error naming the key for another attention.
int attention_levels(const Json& config);

/// The most OpenMP threads a run may ask for (config key train.threads, the --threads
/// options): far above any CPU hkt runs on, and low enough for the OpenMP runtime to
/// start the team (100,000 crashed libgomp; 20,000 ran for minutes at a load of 2,000 on
/// a 2-core machine).
inline constexpr int kMaxThreads = 1024;

/// config.train.threads, checked to be in 0..kMaxThreads (0: the OpenMP default) while
/// still 64-bit (a larger value is refused, not wrapped). Throws hkt::Error naming the key.
int train_threads(const Json& config);

/// Sets the OpenMP thread count when threads > 0 (0 leaves the default), and prints a note
/// to stderr when it exceeds this machine's hardware threads (the run will be slower, not
/// faster). threads must be in 0..kMaxThreads.
void use_threads(int threads);

/// config.model.hkt.levels, checked to be in 1..kMaxLevels while still 64-bit. Throws hkt::Error
/// naming the key.
int hkt_levels(const Json& config);

/// Replaces "${HKT_DATA_DIR}" in a path with hkt::data::data_dir().
std::string expand_path(const std::string& path);

}  // namespace hkt::config
