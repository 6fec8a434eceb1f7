// Opens the model named on the command line through an installed ddaebm C++ binding.

#include <ddaebm.hpp>

#include <cstdio>

int main(int argc, char** argv) {
    if (argc != 2 || !ddaebm::version_matches()) {
        return 1;
    }
    const auto model = ddaebm::Model::open(argv[1]);
    std::printf("ddaebm %s: input_dim %zu\n", ddaebm::version().c_str(), model.input_dim());
    return model.input_dim() > 0 ? 0 : 1;
}
