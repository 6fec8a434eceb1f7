// A second translation unit including ddaebm.hpp: linking it with the other test files fails
// if the header defines anything non-inline.

#include <ddaebm.hpp>

std::size_t other_tu_input_dim(const ddaebm::Model& model) { return model.input_dim(); }
