// screen: flags the out-of-distribution rows of a CSV file with a ddaebm model.
//
//   screen MODEL.safetensors ROWS.csv
//
// ROWS.csv holds one row per line: comma-separated numbers, no header, as many columns as the
// model has input features (blank lines are skipped). Prints
//
//   flagged K of N rows (threshold T)
//
// then one line per flagged row with its energy and conformal p-value. Exit status: 0 on
// success, 1 on any error (message on stderr), 2 on bad usage.

#include <ddaebm.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

/// Appends the comma-separated numbers on `line` to `rows`; returns how many there were.
std::size_t parse_line(const std::string& line, const std::string& where,
                       std::vector<float>& rows) {
    std::size_t columns = 0;
    const char* p = line.c_str();
    while (true) {
        char* end = nullptr;
        const float value = std::strtof(p, &end);
        if (end == p) {
            throw std::runtime_error(where + ": column " + std::to_string(columns + 1) +
                                     " is not a number");
        }
        while (*end == ' ' || *end == '\t') {
            ++end;
        }
        rows.push_back(value);
        ++columns;
        if (*end == '\0') {
            return columns;
        }
        if (*end != ',') {
            throw std::runtime_error(where + ": unexpected '" + std::string(1, *end) +
                                     "' after column " + std::to_string(columns));
        }
        p = end + 1;
    }
}

/// All rows of the CSV file at `path`, row-major, `dim` values per row.
std::vector<float> read_csv(const std::string& path, std::size_t dim) {
    std::ifstream in(path);
    if (!in) {
        throw std::runtime_error("cannot open " + path);
    }
    std::vector<float> rows;
    std::string line;
    for (std::size_t number = 1; std::getline(in, line); ++number) {
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        if (line.find_first_not_of(" \t") == std::string::npos) {
            continue;
        }
        const std::string where = path + ":" + std::to_string(number);
        const std::size_t columns = parse_line(line, where, rows);
        if (columns != dim) {
            throw std::runtime_error(where + ": expected " + std::to_string(dim) +
                                     " columns (the model's input features), got " +
                                     std::to_string(columns));
        }
    }
    return rows;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s MODEL.safetensors ROWS.csv\n", argv[0]);
        return 2;
    }
    try {
        const auto model = ddaebm::Model::open(argv[1]);
        const std::vector<float> rows = read_csv(argv[2], model.input_dim());
        const ddaebm::Screening screening = model.screen(rows);
        const std::vector<float> pvalues = model.pvalues(rows);

        std::size_t flagged = 0;
        for (const std::uint8_t is_ood : screening.is_ood) {
            flagged += is_ood;
        }
        std::printf("flagged %zu of %zu rows (threshold %g)\n", flagged, screening.is_ood.size(),
                    static_cast<double>(model.threshold()));
        for (std::size_t i = 0; i < screening.is_ood.size(); ++i) {
            if (screening.is_ood[i] != 0) {
                std::printf("  row %zu: energy %g, p-value %g\n", i,
                            static_cast<double>(screening.energy[i]),
                            static_cast<double>(pvalues[i]));
            }
        }
        return 0;
    } catch (const std::exception& e) {  // ddaebm::Error, or a bad CSV file
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
