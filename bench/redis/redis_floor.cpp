// The least a session counter can ask Redis for: SCAN MATCH <prefix>* COUNT
// 1000 and a pipelined GET of every key of each batch. Prints the keys, the
// value bytes received and the wall time, for bench/redis/redis_bench.py.
//
//   redis_floor HOST PORT PREFIX
#include <hiredis/hiredis.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: redis_floor HOST PORT PREFIX\n");
    return 2;
  }
  redisContext* context = redisConnect(argv[1], std::atoi(argv[2]));
  if (context == nullptr || context->err != 0) {
    std::fprintf(stderr, "cannot connect\n");
    return 1;
  }
  const std::string pattern = std::string(argv[3]) + "*";
  const auto start = std::chrono::steady_clock::now();
  std::string cursor = "0";
  unsigned long long keys = 0, bytes = 0;
  do {
    auto* reply = static_cast<redisReply*>(
        redisCommand(context, "SCAN %s MATCH %s COUNT 1000", cursor.c_str(), pattern.c_str()));
    if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY) return 1;
    cursor.assign(reply->element[0]->str, reply->element[0]->len);
    const redisReply* batch = reply->element[1];
    for (size_t i = 0; i < batch->elements; ++i) {
      redisAppendCommand(context, "GET %b", batch->element[i]->str, batch->element[i]->len);
      bytes += batch->element[i]->len;
    }
    for (size_t i = 0; i < batch->elements; ++i) {
      void* raw = nullptr;
      if (redisGetReply(context, &raw) != REDIS_OK) return 1;
      auto* value = static_cast<redisReply*>(raw);
      if (value->type == REDIS_REPLY_STRING) bytes += value->len;
      ++keys;
      freeReplyObject(value);
    }
    freeReplyObject(reply);
  } while (cursor != "0");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("{\"keys\": %llu, \"bytes\": %llu, \"seconds\": %.6f}\n", keys, bytes, seconds);
  redisFree(context);
  return 0;
}
