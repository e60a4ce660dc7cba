using System.Buffers;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace HybridServing.Bench.Load;

/// <summary>What each request looks like; the same for every target of a comparison.</summary>
internal sealed record RequestShape(string Model, bool Stream, int MaxTokens, int PromptWords, string? ApiKey, int Seed);

/// <summary>
/// A C# load generator for OpenAI chat completions over HTTP/1.1 keep-alive connections:
/// closed loop (N workers, each sends its next request when the last one finished) for throughput,
/// open loop (requests at a fixed rate whatever the answers do) for latency. Open-loop latency is
/// measured from each request's scheduled time, so a stalled server is not hidden (no coordinated omission).
/// Every answer is exactly <c>max_tokens</c> long (vLLM's <c>ignore_eos</c>), so every target does the same work.
/// A request succeeds when the status is 2xx and, when streaming, the stream ends with <c>data: [DONE]</c>.
/// </summary>
internal sealed class LoadGenerator : IDisposable
{
    private static readonly byte[] Done = "data: [DONE]"u8.ToArray();
    private static readonly string[] Words =
    [
        "explain", "the", "difference", "between", "adapters", "and", "full", "fine-tuning", "for", "a", "support", "bot",
        "summarise", "this", "ticket", "customer", "reports", "latency", "when", "uploading", "large", "files", "please",
        "write", "short", "answer", "in", "French", "translate", "into", "Spanish", "list", "three", "risks", "of", "caching",
    ];

    private readonly HttpClient _client;
    private readonly byte[][] _bodies;
    private readonly RequestShape _shape;
    private readonly Uri _url;

    public LoadGenerator(Uri baseUrl, RequestShape shape, int maxConnections)
    {
        _shape = shape;
        _url = new Uri(baseUrl, "v1/chat/completions");
        _client = new HttpClient(new SocketsHttpHandler
        {
            MaxConnectionsPerServer = maxConnections,
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(5),
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
        })
        { Timeout = Timeout.InfiniteTimeSpan };
        // A seeded set of prompts: the same bodies, in the same order, for every target.
        var random = new Random(shape.Seed);
        _bodies = new byte[64][];
        for (var i = 0; i < _bodies.Length; i++)
        {
            var prompt = string.Join(' ', Enumerable.Range(0, shape.PromptWords).Select(_ => Words[random.Next(Words.Length)]));
            var stream = shape.Stream ? "true" : "false";
            _bodies[i] = Encoding.UTF8.GetBytes(
                $$"""{"model":"{{shape.Model}}","messages":[{"role":"user","content":"{{prompt}}"}],"max_tokens":{{shape.MaxTokens}},"ignore_eos":true,"stream":{{stream}},"temperature":0}""");
        }
    }

    /// <summary>One request; times are Stopwatch timestamps.</summary>
    public async Task<(bool Ok, long FirstByte, long End, string? Error)> SendAsync(long index, CancellationToken cancellationToken = default, Action? onFirstByte = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, _url)
        {
            Content = new ByteArrayContent(_bodies[index % _bodies.Length]),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        if (_shape.ApiKey is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _shape.ApiKey);
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            using var response = await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            long firstByte = 0;
            var tail = new byte[Done.Length + 8];
            var tailLength = 0;
            int read;
            while ((read = await body.ReadAsync(buffer, cancellationToken)) > 0)
            {
                if (firstByte == 0)
                {
                    firstByte = Stopwatch.GetTimestamp();
                    onFirstByte?.Invoke();
                }
                KeepTail(tail, ref tailLength, buffer.AsSpan(0, read));
            }
            var end = Stopwatch.GetTimestamp();
            if (firstByte == 0) firstByte = end;
            if (!response.IsSuccessStatusCode)
                return (false, firstByte, end, $"HTTP {(int)response.StatusCode}: {Encoding.UTF8.GetString(tail, 0, tailLength)}");
            if (_shape.Stream && tail.AsSpan(0, tailLength).IndexOf(Done) < 0)
                return (false, firstByte, end, "stream did not end with data: [DONE]");
            return (true, firstByte, end, null);
        }
        catch (Exception e) when (e is HttpRequestException or IOException || e is OperationCanceledException && !cancellationToken.IsCancellationRequested)
        {
            var now = Stopwatch.GetTimestamp();
            return (false, now, now, e.GetType().Name + ": " + e.Message);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static void KeepTail(byte[] tail, ref int length, ReadOnlySpan<byte> data)
    {
        if (data.Length >= tail.Length)
        {
            data[^tail.Length..].CopyTo(tail);
            length = tail.Length;
            return;
        }
        var keep = Math.Min(length, tail.Length - data.Length);
        tail.AsSpan(length - keep, keep).CopyTo(tail);
        data.CopyTo(tail.AsSpan(keep));
        length = keep + data.Length;
    }

    /// <summary>
    /// Closed loop: <paramref name="connections"/> workers for <paramref name="warmup"/> + <paramref name="duration"/>;
    /// requests that complete inside the measured window count.
    /// </summary>
    public async Task<LoadResult> ClosedLoopAsync(string target, int connections, TimeSpan warmup, TimeSpan duration)
    {
        var start = Stopwatch.GetTimestamp();
        var measureFrom = start + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        var measureTo = measureFrom + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var latencies = new ConcurrentBag<List<(double, double)>>();
        long errors = 0;
        string? firstError = null;
        long counter = 0;
        var workers = Enumerable.Range(0, connections).Select(_ => Task.Run(async () =>
        {
            var mine = new List<(double, double)>(4096);
            latencies.Add(mine);
            while (true)
            {
                var sent = Stopwatch.GetTimestamp();
                if (sent >= measureTo) break;
                var (ok, firstByte, end, error) = await SendAsync(Interlocked.Increment(ref counter));
                if (end < measureFrom || end > measureTo) continue;
                if (ok) mine.Add((Ms(end - sent), Ms(firstByte - sent)));
                else
                {
                    Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, error, null);
                    await Task.Delay(10); // a failing target must not turn the loop into a busy spin
                }
            }
        })).ToArray();
        await Task.WhenAll(workers);
        var all = latencies.SelectMany(l => l).ToArray();
        return new LoadResult(target, $"closed loop, {connections} connections", duration, all.Length, errors,
            new LatencyStats(all.Select(l => l.Item1)), new LatencyStats(all.Select(l => l.Item2)), firstError);
    }

    /// <summary>
    /// Open loop: requests at <paramref name="rate"/> per second for <paramref name="warmup"/> + <paramref name="duration"/>,
    /// each timed from its scheduled start (or its actual start, when the timer fired early).
    /// </summary>
    public async Task<LoadResult> OpenLoopAsync(string target, double rate, TimeSpan warmup, TimeSpan duration, int maxInFlight = 5000)
    {
        var interval = Stopwatch.Frequency / rate;
        var start = Stopwatch.GetTimestamp();
        var measureFrom = start + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
        var measureTo = measureFrom + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var samples = new ConcurrentQueue<(double, double)>();
        var inFlight = new List<Task>();
        long errors = 0, inFlightCount = 0;
        string? firstError = null;

        async Task One(long i, long scheduled)
        {
            try
            {
                var actual = Stopwatch.GetTimestamp();
                var from = Math.Min(scheduled, actual);
                var (ok, firstByte, end, error) = await SendAsync(i);
                if (scheduled < measureFrom) return;
                if (ok) samples.Enqueue((Ms(end - from), Ms(firstByte - from)));
                else
                {
                    Interlocked.Increment(ref errors);
                    Interlocked.CompareExchange(ref firstError, error, null);
                }
            }
            finally { Interlocked.Decrement(ref inFlightCount); }
        }

        for (long i = 0; ; i++)
        {
            var scheduled = start + (long)(i * interval);
            if (scheduled >= measureTo) break;
            var wait = scheduled - Stopwatch.GetTimestamp();
            // Timers are ~1 ms coarse: sleep when far, and send up to 1 ms early otherwise (timed from the actual send).
            if (wait > Stopwatch.Frequency / 1000) await Task.Delay(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency));
            if (Interlocked.Read(ref inFlightCount) >= maxInFlight)
            {
                if (scheduled >= measureFrom) Interlocked.Increment(ref errors);
                Interlocked.CompareExchange(ref firstError, $"more than {maxInFlight} requests in flight: the target cannot keep up with {rate}/s", null);
                continue;
            }
            Interlocked.Increment(ref inFlightCount);
            inFlight.Add(One(i, scheduled));
            if (inFlight.Count > 4096) inFlight.RemoveAll(t => t.IsCompleted);
        }
        await Task.WhenAll(inFlight);
        var all = samples.ToArray();
        return new LoadResult(target, $"open loop, {rate:0.#} req/s", duration, all.Length, errors,
            new LatencyStats(all.Select(l => l.Item1)), new LatencyStats(all.Select(l => l.Item2)), firstError);
    }

    private static double Ms(long ticks) => ticks * 1000.0 / Stopwatch.Frequency;

    public void Dispose() => _client.Dispose();
}
