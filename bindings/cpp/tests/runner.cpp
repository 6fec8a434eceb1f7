// main() of the test executables and the fixture loader.

#include "runner.hpp"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <map>
#include <sstream>

namespace test {
namespace {

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::runtime_error("cannot read fixture file " + path);
    }
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// A raw little-endian array of T (the fixture is written on and for little-endian hosts).
template <class T>
std::vector<T> read_array(const std::string& path) {
    const std::string bytes = read_bytes(path);
    if (bytes.size() % sizeof(T) != 0) {
        throw std::runtime_error(path + ": size is not a multiple of " + std::to_string(sizeof(T)));
    }
    std::vector<T> values(bytes.size() / sizeof(T));
    std::memcpy(values.data(), bytes.data(), bytes.size());
    return values;
}

Fixture load() {
    const char* dir = std::getenv("DDAEBM_FIXTURE_DIR");
    if (dir == nullptr || *dir == '\0') {
        throw std::runtime_error(
            "DDAEBM_FIXTURE_DIR is not set (run bindings/cpp/test.sh or scripts/test-bindings.sh)");
    }
    Fixture f;
    f.dir = dir;

    std::map<std::string, std::string> keys;
    std::istringstream text(read_bytes(f.path("fixture.txt")));
    for (std::string key, value; text >> key >> value;) {
        keys[key] = value;
    }
    const auto get = [&](const char* key) {
        const auto it = keys.find(key);
        if (it == keys.end()) {
            throw std::runtime_error(f.path("fixture.txt") + ": no key " + key);
        }
        return it->second;
    };
    f.rows = std::stoul(get("rows"));
    f.dim = std::stoul(get("dim"));
    f.sample_rows = std::stoul(get("sample_rows"));
    f.sample_seed = std::stoull(get("sample_seed"));
    f.flagged = std::stoul(get("flagged"));
    f.threshold = std::strtof(get("threshold").c_str(), nullptr);
    f.calibration_rows = std::stoull(get("calibration_rows"));
    f.image_channels = std::stoul(get("image_channels"));
    f.image_height = std::stoul(get("image_height"));
    f.image_width = std::stoul(get("image_width"));
    f.image_rows = std::stoul(get("image_rows"));

    f.x = read_array<float>(f.path("rows.f32"));
    f.energy = read_array<float>(f.path("energy.f32"));
    f.pvalue = read_array<float>(f.path("pvalue.f32"));
    f.explain = read_array<float>(f.path("explain.f32"));
    f.is_ood = read_array<std::uint8_t>(f.path("is_ood.u8"));
    f.sample = read_array<float>(f.path("sample.f32"));
    f.drift = read_array<double>(f.path("drift.f64"));
    if (f.x.size() != f.rows * f.dim || f.energy.size() != f.rows || f.pvalue.size() != f.rows ||
        f.explain.size() != f.rows * f.dim ||
        f.is_ood.size() != f.rows || f.sample.size() != f.sample_rows * f.dim ||
        f.drift.size() != 6) {
        throw std::runtime_error(f.dir + ": array sizes disagree with fixture.txt");
    }
    f.image_x = read_array<float>(f.path("image_rows.f32"));
    f.image_energy = read_array<float>(f.path("image_energy.f32"));
    if (f.image_x.size() != f.image_rows * f.image_channels * f.image_height * f.image_width ||
        f.image_energy.size() != f.image_rows) {
        throw std::runtime_error(f.dir + ": image array sizes disagree with fixture.txt");
    }
    f.gcd_energy = read_array<float>(f.path("gcd_energy.f32"));
    f.gcd_sample = read_array<float>(f.path("gcd_sample.f32"));
    if (f.gcd_energy.size() != f.rows || f.gcd_sample.size() != f.sample_rows * f.dim) {
        throw std::runtime_error(f.dir + ": GCD array sizes disagree with fixture.txt");
    }
    f.dcd_energy = read_array<float>(f.path("dcd_energy.f32"));
    f.dcd_sample = read_array<float>(f.path("dcd_sample.f32"));
    if (f.dcd_energy.size() != f.rows || f.dcd_sample.size() != f.sample_rows * f.dim) {
        throw std::runtime_error(f.dir + ": DCD array sizes disagree with fixture.txt");
    }
    return f;
}

bool run(const Case& c) {
    try {
        c.run();
        std::printf("PASS %s\n", c.name);
        return true;
    } catch (const std::exception& e) {
        std::printf("FAIL %s: %s\n", c.name, e.what());
    } catch (...) {
        std::printf("FAIL %s: unknown exception\n", c.name);
    }
    return false;
}

}  // namespace

const Fixture& fixture() {
    static const Fixture f = load();
    return f;
}

}  // namespace test

int main(int argc, char** argv) {
    const auto& cases = test::registry();
    if (argc == 1) {
        int failed = 0;
        for (const auto& c : cases) {
            failed += test::run(c) ? 0 : 1;
        }
        std::printf("%zu passed, %d failed\n", cases.size() - static_cast<std::size_t>(failed),
                    failed);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
    }
    for (const auto& c : cases) {
        if (c.name == std::string(argv[1])) {
            return test::run(c) ? EXIT_SUCCESS : EXIT_FAILURE;
        }
    }
    std::fprintf(stderr, "usage: %s [CASE]; no case named %s\n", argv[0], argv[1]);
    return EXIT_FAILURE;
}
