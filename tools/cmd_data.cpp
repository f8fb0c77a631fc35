// cmd_data.cpp: `hkt data generate-listops` and `hkt data inspect` (datasets/ does the
// reading; this file only parses arguments and prints).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cifar10.h"
#include "commands.h"
#include "idx.h"
#include "imdb.h"
#include "listops.h"

namespace hkt::tools {

namespace {

// Statistics of a dataset as `hkt data inspect` reports them.
nlohmann::json describe(const data::Dataset& d) {
  std::int64_t min_len = d.size() ? d.length(0) : 0, max_len = 0;
  double total = 0;
  for (std::int64_t i = 0; i < d.size(); ++i) {
    min_len = std::min(min_len, d.length(i));
    max_len = std::max(max_len, d.length(i));
    total += static_cast<double>(d.length(i));
  }
  nlohmann::json histogram = nlohmann::json::object();
  const auto h = d.label_histogram();
  for (std::size_t c = 0; c < h.size(); ++c)
    histogram[c < d.class_names.size() ? d.class_names[c] : std::to_string(c)] = h[c];
  return {{"name", d.name},
          {"split", d.split},
          {"count", d.size()},
          {"label_histogram", histogram},
          {"length_min", min_len},
          {"length_mean", d.size() ? total / static_cast<double>(d.size()) : 0.0},
          {"length_max", max_len},
          {"chance_level", d.chance_level()},
          {"vocab_size", d.vocab_size},
          {"num_features", d.num_features},
          {"num_classes", d.num_classes}};
}

void print_description(const nlohmann::json& j) {
  std::printf("%s/%s: %lld examples, %lld classes\n", j["name"].get<std::string>().c_str(),
              j["split"].get<std::string>().c_str(), static_cast<long long>(j["count"].get<std::int64_t>()),
              static_cast<long long>(j["num_classes"].get<std::int64_t>()));
  std::printf("  length (steps): min %lld, mean %.2f, max %lld\n",
              static_cast<long long>(j["length_min"].get<std::int64_t>()), j["length_mean"].get<double>(),
              static_cast<long long>(j["length_max"].get<std::int64_t>()));
  if (j["num_features"].get<std::int64_t>() > 0)
    std::printf("  features: %lld real values a step\n", static_cast<long long>(j["num_features"].get<std::int64_t>()));
  else
    std::printf("  vocabulary: %lld tokens\n", static_cast<long long>(j["vocab_size"].get<std::int64_t>()));
  std::printf("  chance level (constant predictor): %.4f\n", j["chance_level"].get<double>());
  std::printf("  labels:");
  for (auto it = j["label_histogram"].begin(); it != j["label_histogram"].end(); ++it)
    std::printf(" %s=%lld", it.key().c_str(), static_cast<long long>(it.value().get<std::int64_t>()));
  std::printf("\n");
}

}  // namespace

void add_data_commands(CLI::App& app) {
  auto* data_cmd = app.add_subcommand("data", "Generate and inspect data sets");
  data_cmd->require_subcommand(1);

  // ---- hkt data generate-listops
  struct GenArgs {
    std::string preset = "nangia-bowman", out;
    std::int64_t max_len = 0, train = 0, val = 0, test = 0;
    std::uint64_t seed = 0;
  };
  auto g = std::make_shared<GenArgs>();
  auto* gen = data_cmd->add_subcommand(
      "generate-listops", "Write seeded, disjoint ListOps splits as LRA TSV files (train.tsv, val.tsv, test.tsv)");
  gen->add_option("--preset", g->preset, "nangia-bowman, lra or lra-512")->capture_default_str();
  gen->add_option("--max-len", g->max_len, "Longest example in tokens (default: the preset's)");
  gen->add_option("--train", g->train, "Training examples")->required()->check(CLI::NonNegativeNumber);
  gen->add_option("--val", g->val, "Validation examples")->required()->check(CLI::NonNegativeNumber);
  gen->add_option("--test", g->test, "Test examples")->required()->check(CLI::NonNegativeNumber);
  gen->add_option("--seed", g->seed, "Seed (same seed: byte-identical files)")->required();
  gen->add_option("--out", g->out, "Directory to write")->required()->check(nonempty_path());
  on_selected(gen, [g] {
    auto config = data::listops::preset(g->preset);
    if (g->max_len > 0) {
      check(g->max_len > config.min_len, "generate-listops: --max-len " + std::to_string(g->max_len) +
                                             " must exceed the preset's minimum length " +
                                             std::to_string(config.min_len));
      config.max_len = g->max_len;
    }
    const auto splits = data::listops::generate(config, g->train, g->val, g->test, g->seed);
    std::filesystem::create_directories(g->out);
    // Every file is complete (temporary name, then rename) before the next is begun.
    data::listops::write_lra_tsv(g->out + "/train.tsv", splits.train);
    data::listops::write_lra_tsv(g->out + "/val.tsv", splits.val);
    data::listops::write_lra_tsv(g->out + "/test.tsv", splits.test);
    std::printf("wrote %zu / %zu / %zu examples (preset %s, max_len %lld, seed %llu) to %s/{train,val,test}.tsv\n",
                splits.train.size(), splits.val.size(), splits.test.size(), g->preset.c_str(),
                static_cast<long long>(config.max_len), static_cast<unsigned long long>(g->seed), g->out.c_str());
    return 0;
  });

  // ---- hkt data inspect
  struct InspectArgs {
    std::string format, path;
    std::int64_t max_len = 0;
    bool check_labels = false, json = false;
  };
  auto a = std::make_shared<InspectArgs>();
  auto* inspect = data_cmd->add_subcommand(
      "inspect", "Count, label histogram, lengths, chance level and vocabulary of a data file");
  inspect->add_option("--format", a->format, "listops-tsv, listops-release, cifar10-bin, aclimdb or idx")
      ->required()
      ->check(CLI::IsMember({"listops-tsv", "listops-release", "cifar10-bin", "aclimdb", "idx"}));
  inspect->add_option("path", a->path, "The file (or, for aclimdb, the folder)")->required();
  inspect->add_option("--max-len", a->max_len,
                      "Longest example allowed (ListOps: longer is an error; IMDB: bytes kept)");
  inspect->add_flag("--check-labels", a->check_labels,
                    "ListOps: recompute every label from its expression, list mismatches");
  inspect->add_flag("--json", a->json, "Print JSON");
  on_selected(inspect, [a] {
    check(std::filesystem::exists(a->path), "data inspect: " + a->path + " does not exist");
    nlohmann::json out = nlohmann::json::array();
    int status = 0;
    if (a->format == "listops-tsv" || a->format == "listops-release") {
      const bool release = a->format == "listops-release";
      const std::int64_t max_len = a->max_len > 0 ? a->max_len : (std::int64_t{1} << 40);
      if (a->check_labels) {
        const auto examples = data::listops::read_examples(a->path, release);
        nlohmann::json mismatches = nlohmann::json::array();
        for (const auto& e : examples)
          if (e.computed != e.label)
            mismatches.push_back({{"line", e.line}, {"label", e.label}, {"computed", e.computed}});
        if (!a->json) {
          std::printf("check-labels: %zu examples, %zu labels differ from their expression's value\n", examples.size(),
                      mismatches.size());
          for (const auto& m : mismatches)
            std::printf("  line %lld: label %d, expression gives %d\n",
                        static_cast<long long>(m["line"].get<std::int64_t>()), m["label"].get<int>(),
                        m["computed"].get<int>());
        }
        if (!mismatches.empty()) {
          if (a->json)
            std::cout << nlohmann::json{{"examples", examples.size()}, {"mismatches", mismatches}}.dump(2) << "\n";
          return 1;  // the reader below would stop at the first mismatch
        }
      }
      out.push_back(describe(release ? data::listops::read_release(a->path, max_len, "file")
                                     : data::listops::read_lra_tsv(a->path, max_len, "file")));
      if (a->check_labels) out.back()["labels_checked"] = true;
    } else if (a->format == "cifar10-bin") {
      out.push_back(describe(data::cifar10::read_file(a->path, data::cifar10::Mode::Gray, "file")));
    } else if (a->format == "idx") {
      const auto array = data::idx::read(a->path);
      nlohmann::json j = {{"name", std::filesystem::path(a->path).filename().string()}, {"dims", array.dims}};
      if (array.dims.size() == 1) {  // a labels file
        std::map<int, std::int64_t> h;
        for (auto v : array.data) ++h[v];
        nlohmann::json hist = nlohmann::json::object();
        std::int64_t most = 0;
        for (auto [label, n] : h) {
          hist[std::to_string(label)] = n;
          most = std::max(most, n);
        }
        j["count"] = array.dims[0];
        j["label_histogram"] = hist;
        j["chance_level"] = array.dims[0] ? static_cast<double>(most) / array.dims[0] : 0.0;
      } else {
        j["count"] = array.dims.empty() ? 0 : array.dims[0];
        std::int64_t per = 1;
        for (std::size_t i = 1; i < array.dims.size(); ++i) per *= array.dims[i];
        j["length"] = per;
        j["vocab_size"] = 256;
      }
      std::cout << j.dump(2) << "\n";  // an IDX array has no classes to summarise: print its facts as JSON
      return 0;
    } else {  // aclimdb
      data::imdb::Options options;
      if (a->max_len > 0) options.max_len = a->max_len;
      const auto splits = data::imdb::read(a->path, options);
      for (const auto& w : splits.warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
      for (const auto* d : {&splits.train, &splits.val, &splits.test}) out.push_back(describe(*d));
    }
    if (a->json) {
      std::cout << (out.size() == 1 ? out[0] : out).dump(2) << "\n";
    } else {
      for (const auto& j : out) print_description(j);
      if (a->check_labels) std::printf("check-labels: every label equals its expression's value\n");
    }
    return status;
  });
}

}  // namespace hkt::tools
