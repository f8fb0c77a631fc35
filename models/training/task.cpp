#include "task.h"

#include <filesystem>

#include "cifar10.h"
#include "idx.h"
#include "imdb.h"
#include "listops.h"

namespace hkt {

namespace {

// The first n examples (n <= 0: all).
data::Dataset limited(const data::Dataset& d, std::int64_t n) {
  if (n <= 0 || n >= d.size()) return d;
  std::vector<std::int64_t> first(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) first[static_cast<std::size_t>(i)] = i;
  return d.subset(first, d.split);
}

std::string required_path(const config::Json& section, const std::string& key, const std::string& full_key) {
  const std::string p = config::expand_path(section.at(key).get<std::string>());
  check(!p.empty(), "config key '" + full_key + "' must name a path for this task");
  return p;
}

TaskData load_listops(const config::Json& data, std::int64_t max_len) {
  const config::Json& c = data.at("listops");
  TaskData t;
  const std::string source = c.at("source").get<std::string>();
  if (source == "generate") {
    auto gen = data::listops::preset(c.at("preset").get<std::string>());
    gen.max_len = std::min(gen.max_len, max_len);  // never longer than the model's T
    const auto splits = data::listops::generate(gen, c.at("train").get<std::int64_t>(), c.at("val").get<std::int64_t>(),
                                                c.at("test").get<std::int64_t>(), c.at("seed").get<std::uint64_t>());
    t.train = data::listops::to_dataset(splits.train, max_len, "train");
    t.val = data::listops::to_dataset(splits.val, max_len, "val");
    t.test = data::listops::to_dataset(splits.test, max_len, "test");
  } else if (source == "files") {
    t.train = data::listops::read_lra_tsv(required_path(c, "train_path", "data.listops.train_path"), max_len, "train");
    t.val = data::listops::read_lra_tsv(required_path(c, "val_path", "data.listops.val_path"), max_len, "val");
    t.test = data::listops::read_lra_tsv(required_path(c, "test_path", "data.listops.test_path"), max_len, "test");
  } else {
    throw Error("config key 'data.listops.source' must be \"generate\" or \"files\", got \"" + source + "\"");
  }
  const std::string extra = config::expand_path(c.at("extra_test_release").get<std::string>());
  if (!extra.empty()) {
    // The 2018 release has examples up to 939 tokens. Those longer than the model's T are
    // left out of this extra test (never truncated: the label depends on the closing
    // brackets), and the count is reported.
    constexpr std::int64_t kLongestReleased = 1 << 16;
    const data::Dataset all = data::listops::read_release(extra, kLongestReleased, "test");
    std::vector<std::int64_t> fit;
    for (std::int64_t i = 0; i < all.size(); ++i)
      if (all.length(i) <= max_len) fit.push_back(i);
    check(!fit.empty(), extra + ": no example has at most max_len = " + std::to_string(max_len) + " tokens");
    data::Dataset released = all.subset(fit, "test");
    released.max_len = max_len;
    released.name = "listops-released";
    if (static_cast<std::int64_t>(fit.size()) < all.size())
      t.warnings.push_back(extra + ": " + std::to_string(all.size() - static_cast<std::int64_t>(fit.size())) + " of " +
                           std::to_string(all.size()) + " examples are longer than max_len = " +
                           std::to_string(max_len) + " tokens and are left out of this extra test (never truncated)");
    t.extra_tests.push_back(std::move(released));
  }
  return t;
}

}  // namespace

TaskData load_task(const config::Json& config) {
  const config::Json& data = config.at("data");
  const std::string task = data.at("task").get<std::string>();
  const std::int64_t max_len = data.at("max_len").get<std::int64_t>();
  check(max_len >= 1, "config key 'data.max_len' must be >= 1");
  TaskData t;
  if (task == "listops") {
    t = load_listops(data, max_len);
  } else if (task == "cifar10") {
    const config::Json& c = data.at("cifar10");
    const std::string mode = c.at("mode").get<std::string>();
    check(mode == "gray" || mode == "rgb",
          "config key 'data.cifar10.mode' must be \"gray\" or \"rgb\", got \"" + mode + "\"");
    check(max_len >= 1024, "config key 'data.max_len' must be >= 1024 for sequential CIFAR-10 (1024 pixels)");
    const auto m = mode == "gray" ? data::cifar10::Mode::Gray : data::cifar10::Mode::Rgb;
    auto splits = data::cifar10::read_folder(required_path(c, "dir", "data.cifar10.dir"), m,
                                             c.at("val_size").get<std::int64_t>());
    t.train = std::move(splits.train);
    t.val = std::move(splits.val);
    t.test = std::move(splits.test);
    // An evaluation-only file in the CIFAR-10 binary format (e.g. the 200 real test
    // images in ../shared/data/cifar10), evaluated once at the end like the test split.
    const std::string extra = config::expand_path(c.at("test_file").get<std::string>());
    if (!extra.empty()) {
      data::Dataset d = data::cifar10::read_file(extra, m, "test");
      d.name = "cifar10-" + std::filesystem::path(extra).stem().string();
      t.extra_tests.push_back(std::move(d));
    }
  } else if (task == "imdb") {
    const config::Json& c = data.at("imdb");
    data::imdb::Options options;
    options.max_len = max_len;
    options.val_fraction = c.at("val_fraction").get<double>();
    options.replace_br = c.at("replace_br").get<bool>();
    options.seed = config.at("train").at("seed").get<std::uint64_t>();
    auto splits = data::imdb::read(required_path(c, "dir", "data.imdb.dir"), options);
    t.train = std::move(splits.train);
    t.val = std::move(splits.val);
    t.test = std::move(splits.test);
    t.warnings = std::move(splits.warnings);
  } else if (task == "fashion-mnist") {
    check(max_len >= 784, "config key 'data.max_len' must be >= 784 for Fashion-MNIST (784 pixels)");
    auto splits =
        data::fashion_mnist::read_folder(required_path(data.at("fashion_mnist"), "dir", "data.fashion_mnist.dir"));
    t.train = std::move(splits.train);
    t.val = std::move(splits.val);
    t.test = std::move(splits.test);
  } else {
    throw Error("config key 'data.task' must be \"listops\", \"cifar10\", \"imdb\" or \"fashion-mnist\", got \"" +
                task + "\"");
  }
  t.train = limited(t.train, data.at("limit_train").get<std::int64_t>());
  t.val = limited(t.val, data.at("limit_val").get<std::int64_t>());
  t.test = limited(t.test, data.at("limit_test").get<std::int64_t>());
  for (auto* d : {&t.train, &t.val, &t.test})
    check(d->size() > 0, "task " + task + ": the " + d->split + " split is empty");
  return t;
}

}  // namespace hkt
