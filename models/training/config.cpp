#include "config.h"

#include <omp.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <set>
#include <thread>

#include "dataset.h"
#include "error.h"

namespace hkt::config {

const Json& defaults() {
  static const Json d = Json::parse(R"({
  "data": {
    "task": "listops",
    "max_len": 512,
    "limit_train": 0,
    "limit_val": 0,
    "limit_test": 0,
    "listops": {
      "source": "generate",
      "preset": "nangia-bowman",
      "train": 2000,
      "val": 200,
      "test": 200,
      "seed": 0,
      "train_path": "",
      "val_path": "",
      "test_path": "",
      "extra_test_release": ""
    },
    "cifar10": {"dir": "", "mode": "gray", "val_size": 5000, "test_file": ""},
    "imdb": {"dir": "", "val_fraction": 0.1, "replace_br": false},
    "fashion_mnist": {"dir": "/usr/share/datasets/fashion-mnist"}
  },
  "model": {
    "attention": "hkt",
    "d_model": 64,
    "n_heads": 4,
    "n_layers": 2,
    "d_ff": 128,
    "dropout": 0.1,
    "positions": "learned",
    "pooling": "mean",
    "layer_norm_eps": 1e-5,
    "attention_precision": "fp32",
    "hkt": {
      "levels": 3,
      "fusion": "scores",
      "level_weights": "per_head",
      "fixed_weights": [],
      "downsampler": "depthwise",
      "kernel_size": 2,
      "causal": false,
      "impl": "fused"
    }
  },
  "train": {
    "seed": 0,
    "dtype": "float32",
    "threads": 0,
    "batch_size": 32,
    "eval_batch_size": 64,
    "steps": 1000,
    "lr": 1e-3,
    "schedule": "cosine",
    "warmup_steps": 100,
    "min_lr": 0.0,
    "weight_decay": 0.01,
    "beta1": 0.9,
    "beta2": 0.999,
    "eps": 1e-8,
    "clip_norm": 1.0,
    "label_smoothing": 0.0,
    "eval_every": 200,
    "log_every": 20,
    "checkpoint_every": 200,
    "pad_to_longest": true
  },
  "experiment": {
    "name": "",
    "seeds": [0, 1, 2],
    "variants": [{"name": "mha", "set": {"model.attention": "mha"}}, {"name": "hkt", "set": {"model.attention": "hkt"}}],
    "baseline": "mha",
    "compare_to": [],
    "paper_row": ""
  }
})");
  return d;
}

namespace {

std::string type_name(const Json& v) {
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_boolean()) return "a boolean";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "a list";
  if (v.is_object()) return "an object";
  return "null";
}

// Merges `value` into `target` (whose type is the default's) at `key`.
void merge_into(Json& target, const Json& value, const std::string& key, const std::string& where) {
  if (target.is_object()) {
    check(value.is_object(), where + ": config key '" + key + "' must be an object, got " + type_name(value));
    for (auto it = value.begin(); it != value.end(); ++it) {
      const std::string sub = key.empty() ? it.key() : key + "." + it.key();
      check(target.contains(it.key()), where + ": unknown config key '" + sub + "'");
      merge_into(target[it.key()], it.value(), sub, where);
    }
    return;
  }
  const bool ok = target.is_number_integer()
                      ? value.is_number_integer() ||
                            (value.is_number_float() && value.get<double>() == std::floor(value.get<double>()))
                  : target.is_number()  ? value.is_number()
                  : target.is_boolean() ? value.is_boolean()
                  : target.is_string()  ? value.is_string()
                  : target.is_array()   ? value.is_array()
                                        : true;
  check(ok, where + ": config key '" + key + "' must be " + type_name(target) + ", got " + type_name(value) + " (" +
                value.dump() + ")");
  if (target.is_number_integer()) {
    // Integers are kept as int64; an integral float (2.0, 1e3) is accepted, anything
    // beyond +-2^62 is refused before a cast could overflow.
    const double v = value.get<double>();
    check(std::fabs(v) < 0x1p62, where + ": config key '" + key + "' = " + value.dump() + " is out of range");
    target = value.is_number_float() ? Json(static_cast<std::int64_t>(v)) : Json(value.get<std::int64_t>());
  } else {
    target = value;
  }
}

}  // namespace

Json merge(const Json& overrides, const std::string& where) {
  Json out = defaults();
  merge_into(out, overrides, "", where);
  return out;
}

namespace {

// The parser callback that refuses duplicate keys: one set of keys per open object, and
// the key path ("train.steps", "[2]" for array elements) for the message. It also refuses
// nesting deeper than kMaxConfigDepth: a config is a few levels deep, and a hostile depth
// (100,000 open brackets) would otherwise build a tree whose copies and comparisons
// recurse until the stack overflows.
constexpr int kMaxConfigDepth = 32;

class DuplicateKeyGuard {
 public:
  explicit DuplicateKeyGuard(std::string where) : where_(std::move(where)) {}
  bool operator()(int depth, Json::parse_event_t event, Json& parsed) {
    using E = Json::parse_event_t;
    if (depth > kMaxConfigDepth)
      throw Error(where_ + ": nested deeper than " + std::to_string(kMaxConfigDepth) + " levels (at '" + path() +
                  "'); a config is a few levels deep");
    switch (event) {
      case E::object_start:
        open_.push_back({true, {}, ""});
        break;
      case E::array_start:
        open_.push_back({false, {}, "[]"});
        break;
      case E::object_end:
      case E::array_end:
        open_.pop_back();
        break;
      case E::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        open_.back().current = key;
        if (!open_.back().keys.insert(key).second)
          throw Error(where_ + ": the key '" + path() + "' appears twice (remove one; JSON would keep only the last)");
        break;
      }
      case E::value:
        break;
    }
    return true;
  }

 private:
  struct Container {
    bool is_object;
    std::set<std::string> keys;
    std::string current;  // the key being parsed, or "[]" inside an array
  };
  std::string path() const {
    std::string p;
    for (const auto& c : open_) p += (p.empty() || !c.is_object ? "" : ".") + c.current;
    return p;
  }
  std::string where_;
  std::vector<Container> open_;
};

}  // namespace

Json apply_sets(Json config, const std::vector<std::string>& sets) {
  for (const auto& item : sets) {
    const auto eq = item.find('=');
    check(eq != std::string::npos && eq > 0, "--set " + item + ": expected key=value");
    const std::string key = item.substr(0, eq), text = item.substr(eq + 1);
    Json value;
    try {
      DuplicateKeyGuard guard("--set " + item);
      value = Json::parse(text.begin(), text.end(), std::ref(guard));
    } catch (const Json::parse_error&) {
      value = text;  // a bare word is a string
    } catch (const Json::exception& e) {
      throw Error("--set " + item + ": " + e.what());
    }
    // Build {"a": {"b": value}} from "a.b" and merge it, so the checks are merge's.
    Json patch = value;
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (std::size_t dot = key.find('.'); dot != std::string::npos; dot = key.find('.', start)) {
      parts.push_back(key.substr(start, dot - start));
      start = dot + 1;
    }
    parts.push_back(key.substr(start));
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) patch = Json{{*it, patch}};
    merge_into(config, patch, "", "--set " + item);
  }
  return config;
}

Json parse_json(const std::string& text, const std::string& where) {
  DuplicateKeyGuard guard(where);
  try {
    return Json::parse(text.begin(), text.end(), std::ref(guard));
  } catch (const Json::exception& e) {  // syntax errors and numbers beyond double's range
    throw Error(where + ": not valid JSON: " + e.what());
  }
}

Json read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), path + ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  check(!in.bad(), path + ": read error");
  return parse_json(text.str(), path);
}

Json load_file(const std::string& path) {
  std::ifstream probe(path);
  check(probe.good(), path + ": cannot open the config file");
  const Json j = read_json_file(path);
  check(j.is_object(), path + ": the config must be a JSON object");
  return merge(j, path);
}

ClassifierConfig model_config(const Json& config, std::int64_t vocab_size, std::int64_t num_features,
                              std::int64_t num_classes, std::int64_t max_len) {
  const Json& m = config.at("model");
  const Json& h = m.at("hkt");
  // The text of an enum key, parsed against its table (models/enum_names.h); the error
  // names the dotted key.
  const auto enum_key = [](const Json& object, const std::string& prefix, const std::string& key, auto tag) {
    return parse_enum<decltype(tag)>(object.at(key).get<std::string>(), "config key '" + prefix + key + "'");
  };
  ClassifierConfig c;
  c.vocab_size = vocab_size;
  c.num_features = num_features;
  c.num_classes = num_classes;
  c.max_len = max_len;
  c.attention = enum_key(m, "model.", "attention", AttentionKind{});
  c.d_model = m.at("d_model").get<std::int64_t>();
  c.n_heads = m.at("n_heads").get<std::int64_t>();
  c.n_layers = m.at("n_layers").get<std::int64_t>();
  c.d_ff = m.at("d_ff").get<std::int64_t>();
  c.dropout = m.at("dropout").get<double>();
  c.positions = enum_key(m, "model.", "positions", Positions{});
  c.pooling = enum_key(m, "model.", "pooling", Pooling{});
  c.layer_norm_eps = m.at("layer_norm_eps").get<double>();
  c.hkt.precision = enum_key(m, "model.", "attention_precision", AttentionPrecision{});
  c.hkt.levels = hkt_levels(config);
  c.hkt.fusion = enum_key(h, "model.hkt.", "fusion", Fusion{});
  c.hkt.level_weights = enum_key(h, "model.hkt.", "level_weights", LevelWeights{});
  for (const auto& w : h.at("fixed_weights")) {
    check(w.is_number(), "config key 'model.hkt.fixed_weights' must be a list of numbers");
    c.hkt.fixed_weights.push_back(w.get<double>());
  }
  c.hkt.downsampler = enum_key(h, "model.hkt.", "downsampler", Downsampler{});
  c.hkt.kernel_size = h.at("kernel_size").get<std::int64_t>();
  c.hkt.causal = h.at("causal").get<bool>();
  c.impl = enum_key(h, "model.hkt.", "impl", AttentionImpl{});
  return c;
}

int attention_levels(const Json& config) {
  const Json& m = config.at("model");
  const auto kind = parse_enum<AttentionKind>(m.at("attention").get<std::string>(), "config key 'model.attention'");
  return kind == AttentionKind::Mha ? 1 : hkt_levels(config);
}

int hkt_levels(const Json& config) {
  const Json& v = config.at("model").at("hkt").at("levels");
  check(v.is_number_integer(), "config key 'model.hkt.levels' must be an integer");
  const std::int64_t levels = v.get<std::int64_t>();
  check(levels >= 1 && levels <= kMaxLevels, "config key 'model.hkt.levels' must be in 1.." +
                                                 std::to_string(kMaxLevels) + ", got " + std::to_string(levels));
  return static_cast<int>(levels);
}

int train_threads(const Json& config) {
  const Json& v = config.at("train").at("threads");
  check(v.is_number_integer(), "config key 'train.threads' must be an integer");
  const std::int64_t threads = v.get<std::int64_t>();
  check(threads >= 0 && threads <= kMaxThreads, "config key 'train.threads' must be in 0.." +
                                                    std::to_string(kMaxThreads) + " (0: the OpenMP default), got " +
                                                    std::to_string(threads));
  return static_cast<int>(threads);
}

void use_threads(int threads) {
  if (threads <= 0) return;
  const unsigned hardware = std::thread::hardware_concurrency();
  if (hardware > 0 && static_cast<unsigned>(threads) > hardware)
    std::fprintf(stderr, "note: %d threads asked for, on a machine with %u hardware threads: steps will be slower\n",
                 threads, hardware);
  omp_set_num_threads(threads);
}

std::string expand_path(const std::string& path) {
  const std::string var = "${HKT_DATA_DIR}";
  std::string out = path;
  for (auto at = out.find(var); at != std::string::npos; at = out.find(var))
    out.replace(at, var.size(), data::data_dir());
  return out;
}

}  // namespace hkt::config
