using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using HybridServing.ClusterSimulator.Workload;
using HybridServing.LiveValidation.Configuration;

namespace HybridServing.LiveValidation.Live;

/// <summary>What happened to one request of the trace on the live stack (times in virtual seconds).</summary>
internal sealed class LiveRequest(Arrival arrival, bool measured)
{
    public Arrival Arrival { get; } = arrival;
    public bool Measured { get; } = measured;
    /// <summary>How late the client sent it against the trace.</summary>
    public double SendLag { get; set; }
    /// <summary>From sending to the first streamed byte; null when none came. Counts only when <see cref="Done"/>, as in the simulator.</summary>
    public double? Ttft { get; set; }
    /// <summary>Time per output token after the first, from the first and last streamed bytes.</summary>
    public double? Tpot { get; set; }
    public bool Done { get; set; }
    public int Status { get; set; }
    public string? Engine { get; set; }
}

/// <summary>
/// Replays a trace open-loop through the gateway: each request is sent at its arrival time (virtual
/// seconds ÷ time scale on the wall clock) whatever the others are doing, as an OpenAI streaming
/// completion whose prompt is exactly the trace's token count (a list of token ids) and whose output
/// is exactly its length (<c>max_tokens</c> with <c>ignore_eos</c>). TTFT is taken from the moment it
/// is sent until the first byte of the stream arrives (the engine writes nothing before the first
/// token), times the time scale.
/// </summary>
internal static class Replayer
{
    /// <summary>Like the simulator: requests still unfinished this long (virtual) after the last arrival count as never answered.</summary>
    private const double DrainLimitSeconds = 60;
    private static readonly MediaTypeHeaderValue Json = new("application/json");

    public static HttpClient CreateClient(Uri gateway) => new(new SocketsHttpHandler
    {
        UseProxy = false,
        MaxConnectionsPerServer = int.MaxValue,
        PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
        ConnectTimeout = TimeSpan.FromSeconds(5),
    })
    {
        BaseAddress = gateway,
        Timeout = Timeout.InfiniteTimeSpan,
        DefaultRequestHeaders = { Authorization = new AuthenticationHeaderValue("Bearer", LiveStack.ApiKey) },
    };

    public static async Task<IReadOnlyList<LiveRequest>> RunAsync(HttpClient http, WorkloadTrace trace, AdapterCatalog catalog, ValidationOptions o,
        CancellationToken cancellationToken)
    {
        var arrivals = trace.Arrivals;
        var requests = arrivals.Select(a => new LiveRequest(a, a.Time >= o.Warmup)).ToArray();
        var tasks = new List<Task>(arrivals.Count);
        using var drain = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var ticksPerVirtualSecond = Stopwatch.Frequency / o.TimeScale;
        var start = Stopwatch.GetTimestamp();
        foreach (var r in requests)
        {
            var due = start + (long)(r.Arrival.Time * ticksPerVirtualSecond);
            var wait = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), due);
            if (wait > TimeSpan.FromMilliseconds(1)) await Task.Delay(wait, cancellationToken);
            r.SendLag = Math.Max(0, Stopwatch.GetElapsedTime(due).TotalSeconds * o.TimeScale);
            tasks.Add(SendAsync(http, r, catalog.Adapters[r.Arrival.Adapter].Name, o.TimeScale, drain.Token));
        }
        var deadline = start + (long)((o.Duration + DrainLimitSeconds) * ticksPerVirtualSecond);
        var all = Task.WhenAll(tasks);
        var left = Stopwatch.GetElapsedTime(Stopwatch.GetTimestamp(), deadline);
        if (await Task.WhenAny(all, Task.Delay(left > TimeSpan.Zero ? left : TimeSpan.Zero, cancellationToken)) != all)
        {
            await drain.CancelAsync();
            await all.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        return requests;
    }

    /// <summary>
    /// Streams requests for the base model (256 prompt and 32 output tokens; no adapter, so placement,
    /// demand and LoRA caches stay as they are) through the whole path for a while, so that every process
    /// has compiled its hot code before the measured trace starts: a virtual warm-up of 15 s is under 4 s
    /// of wall time.
    /// </summary>
    public static async Task WarmUpAsync(HttpClient http, string baseModel, double wallRate, TimeSpan duration, CancellationToken cancellationToken)
    {
        var tasks = new List<Task>();
        var gap = TimeSpan.FromSeconds(1 / wallRate);
        var clock = Stopwatch.StartNew();
        for (var i = 0; clock.Elapsed < duration; i++)
        {
            var r = new LiveRequest(new Arrival(1_000_000 + i, 0, -1, 256, 32), measured: false);
            tasks.Add(SendAsync(http, r, baseModel, 1, cancellationToken));
            var next = gap * (i + 1) - clock.Elapsed;
            if (next > TimeSpan.Zero) await Task.Delay(next, cancellationToken);
        }
        await Task.WhenAll(tasks);
    }

    /// <summary>One line per request (virtual seconds), for looking into a run after the fact.</summary>
    public static void WriteCsv(string path, IReadOnlyList<LiveRequest> requests, AdapterCatalog catalog)
    {
        using var w = new StreamWriter(path);
        w.WriteLine("id,arrival,adapter,popularity_rank,prompt_tokens,output_tokens,measured,send_lag,ttft,tpot,done,status,engine");
        foreach (var r in requests)
        {
            var a = r.Arrival;
            w.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{a.Id},{a.Time:0.0000},{catalog.Adapters[a.Adapter].Name},{catalog.Adapters[a.Adapter].PopularityRank},{a.PromptTokens},{a.OutputTokens},{r.Measured},{r.SendLag:0.0000},{r.Ttft:0.0000},{r.Tpot:0.00000},{r.Done},{r.Status},{r.Engine}"));
        }
    }

    private static async Task SendAsync(HttpClient http, LiveRequest r, string model, double timeScale, CancellationToken cancellationToken)
    {
        // Let the scheduling loop go on to the next arrival at once.
        await Task.Yield();
        try
        {
            using var message = new HttpRequestMessage(HttpMethod.Post, "v1/completions") { Content = Body(model, r.Arrival) };
            var sent = Stopwatch.GetTimestamp();
            using var response = await http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
            r.Status = (int)response.StatusCode;
            r.Engine = response.Headers.TryGetValues("x-hybridserving-engine", out var engine) ? engine.FirstOrDefault() : null;
            await using var stream = await response.Content.ReadAsStreamAsync(cancellationToken);
            var buffer = new byte[8192];
            var tail = new StringBuilder();
            int n;
            while ((n = await stream.ReadAsync(buffer, cancellationToken)) > 0)
            {
                r.Ttft ??= Stopwatch.GetElapsedTime(sent).TotalSeconds * timeScale;
                // Only the end matters: did the stream close properly?
                tail.Append(Encoding.UTF8.GetString(buffer, 0, n));
                if (tail.Length > 64) tail.Remove(0, tail.Length - 64);
            }
            r.Done = response.IsSuccessStatusCode && tail.ToString().TrimEnd().EndsWith("data: [DONE]", StringComparison.Ordinal);
            if (r.Done && r.Arrival.OutputTokens > 1)
                r.Tpot = (Stopwatch.GetElapsedTime(sent).TotalSeconds * timeScale - r.Ttft) / (r.Arrival.OutputTokens - 1);
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException)
        {
            // Stopped at the drain limit, or the connection failed: not Done, so it counts as TTFT = ∞.
        }
    }

    private static ByteArrayContent Body(string model, Arrival a)
    {
        var json = new StringBuilder(64 + 5 * a.PromptTokens);
        json.Append("{\"model\":\"").Append(model).Append("\",\"prompt\":[");
        for (var i = 0; i < a.PromptTokens; i++)
        {
            if (i > 0) json.Append(',');
            // Token ids only count; vary them so prompts differ between requests.
            json.Append((1000 + (a.Id * 31 + i) % 30000).ToString(CultureInfo.InvariantCulture));
        }
        json.Append("],\"max_tokens\":").Append(a.OutputTokens.ToString(CultureInfo.InvariantCulture))
            .Append(",\"ignore_eos\":true,\"stream\":true}");
        return new ByteArrayContent(Encoding.UTF8.GetBytes(json.ToString())) { Headers = { ContentType = Json } };
    }
}
