// The CUDA source compiled as C++ for the emulator (see emu.h).
#define AIOS_EMU 1
#include "../src/cuda/gemm_small.cu"
