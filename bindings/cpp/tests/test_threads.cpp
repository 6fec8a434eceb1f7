// One const Model shared by many threads gives the same results as one thread.

#include <ddaebm.hpp>

#include "runner.hpp"

#include <atomic>
#include <cstddef>
#include <limits>
#include <string>
#include <thread>
#include <vector>

namespace {

using test::bits_equal;
using test::fixture;

constexpr int kThreads = 8;
constexpr int kRounds = 10;

DDAEBM_TEST(threads_shared_model) {
    const auto& f = fixture();
    const ddaebm::Model model = f.open();
    const auto energy = model.energy(f.x);
    const auto screening = model.screen(f.x);
    const auto pvalues = model.pvalues(f.x);
    const auto sample = model.sample(f.sample_rows, f.sample_seed);
    CHECK(bits_equal(energy, f.energy) && bits_equal(pvalues, f.pvalue));
    CHECK(f.is_drift(model.drift(f.x), false));
    // The threads also score the rows from `first` on, so concurrent calls differ in size.
    std::vector<std::vector<float>> tail_energy;
    for (std::size_t first = 0; first < f.rows; ++first) {
        tail_energy.push_back(model.energy(f.x.data() + first * f.dim, f.rows - first));
    }

    std::atomic<int> mismatches{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int round = 0; round < kRounds; ++round) {
                const auto first = static_cast<std::size_t>(7 * t + 5 * round) % f.rows;
                const auto s = model.screen(f.x);
                const bool same =
                    bits_equal(model.energy(f.x), energy) &&
                    bits_equal(s.energy, screening.energy) &&
                    bits_equal(s.is_ood, screening.is_ood) &&
                    bits_equal(model.pvalues(f.x), pvalues) &&
                    f.is_drift(model.drift(f.x), false) &&
                    bits_equal(model.sample(f.sample_rows, f.sample_seed), sample) &&
                    bits_equal(model.energy(f.x.data() + first * f.dim, f.rows - first),
                               tail_energy[first]);
                if (!same) {
                    ++mismatches;
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    CHECK(mismatches == 0);
}

DDAEBM_TEST(threads_errors_per_thread) {
    // Each thread makes a different row non-finite; its Error must name its own row, not one
    // from another thread's failure.
    const auto& f = fixture();
    const ddaebm::Model model = f.open();
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            std::vector<float> x = f.x;
            const auto row = static_cast<std::size_t>(t);
            x[row * f.dim] = std::numeric_limits<float>::quiet_NaN();
            for (int round = 0; round < kRounds; ++round) {
                try {
                    (void)model.energy(x);
                    ++wrong;
                } catch (const ddaebm::Error& e) {
                    const std::string expected = "row " + std::to_string(row) + ",";
                    if (e.status() != DDAEBM_ERR_NON_FINITE ||
                        std::string(e.what()).find(expected) == std::string::npos) {
                        ++wrong;
                    }
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    CHECK(wrong == 0);
}

}  // namespace
