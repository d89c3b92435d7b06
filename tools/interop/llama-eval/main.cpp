// smelt-llama-eval: loads a GGUF with llama.cpp's own loader and runs one forward pass.
//
//   smelt-llama-eval MODEL.gguf LOGITS.f32 TOKEN_ID...
//
// Prints one JSON line describing what llama.cpp loaded (vocab size and type, layers, embedding
// width) and writes the logits of every position, row-major [n_tokens, n_vocab] little-endian
// f32, to LOGITS.f32. Exit status 1 if the model does not load or decode fails.
//
// Built by tools/interop/build-llama-cpp.sh against the llama.cpp vendored in a pinned
// llama-cpp-python sdist; used by tools/interop/check_llama_cpp.py.
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <vector>

static void quiet_log(enum ggml_log_level level, const char * text, void * /*user*/) {
    if (level >= GGML_LOG_LEVEL_WARN) {
        fputs(text, stderr);
    }
}

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf LOGITS.f32 TOKEN_ID...\n", argv[0]);
        return 2;
    }
    const char * model_path = argv[1];
    const char * out_path = argv[2];
    std::vector<llama_token> tokens;
    for (int i = 3; i < argc; ++i) {
        tokens.push_back((llama_token) atoi(argv[i]));
    }

    llama_log_set(quiet_log, nullptr);
    llama_backend_init();

    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = 0;
    llama_model * model = llama_model_load_from_file(model_path, mparams);
    if (model == nullptr) {
        fprintf(stderr, "llama.cpp could not load %s\n", model_path);
        return 1;
    }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 0; // from the model
    cparams.n_batch = (uint32_t) tokens.size();
    cparams.n_ubatch = (uint32_t) tokens.size();
    cparams.n_threads = 1;
    cparams.n_threads_batch = 1;
    // f32 KV cache so that the comparison with transformers measures the weights, not the cache.
    cparams.type_k = GGML_TYPE_F32;
    cparams.type_v = GGML_TYPE_F32;
    cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context * ctx = llama_init_from_model(model, cparams);
    if (ctx == nullptr) {
        fprintf(stderr, "llama.cpp could not create a context for %s\n", model_path);
        return 1;
    }

    llama_batch batch = llama_batch_init((int32_t) tokens.size(), 0, 1);
    batch.n_tokens = (int32_t) tokens.size();
    for (size_t i = 0; i < tokens.size(); ++i) {
        batch.token[i] = tokens[i];
        batch.pos[i] = (llama_pos) i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    if (llama_decode(ctx, batch) != 0) {
        fprintf(stderr, "llama_decode failed\n");
        return 1;
    }

    FILE * out = fopen(out_path, "wb");
    if (out == nullptr) {
        fprintf(stderr, "cannot write %s\n", out_path);
        return 1;
    }
    for (size_t i = 0; i < tokens.size(); ++i) {
        const float * logits = llama_get_logits_ith(ctx, (int32_t) i);
        if (logits == nullptr || fwrite(logits, sizeof(float), (size_t) n_vocab, out) != (size_t) n_vocab) {
            fprintf(stderr, "cannot read or write the logits of position %zu\n", i);
            return 1;
        }
    }
    fclose(out);

    printf("{\"n_vocab\": %d, \"vocab_type\": %d, \"n_layer\": %d, \"n_embd\": %d, \"bos\": %d, \"eos\": %d}\n",
           n_vocab, (int) llama_vocab_type(vocab), llama_model_n_layer(model), llama_model_n_embd(model),
           (int) llama_vocab_bos(vocab), (int) llama_vocab_eos(vocab));

    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
