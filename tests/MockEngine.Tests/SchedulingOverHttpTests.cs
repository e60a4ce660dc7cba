using HybridServing.Contracts.Metrics;
using HybridServing.TestKit;

namespace HybridServing.MockEngine.Tests;

/// <summary>The performance model seen from outside: what routers read from /metrics while requests queue.</summary>
public sealed class SchedulingOverHttpTests : IDisposable
{
    private readonly TempDirectory _dir = new("me-sched");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Slot_contention_is_visible_in_metrics_while_it_lasts()
    {
        // One slot, two adapters, and a clock twenty times slower than the tiny GPU, so the queue lasts long enough to scrape.
        await using var engine = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "1",
            "--mock-profile", "tiny", "--mock-time-scale", "0.05");
        using var http = Http.Client(engine.BaseUrl);
        foreach (var name in new[] { "a", "b" })
            Assert.Equal(200, (await http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = name, lora_path = TestAdapters.Write(_dir.Path, name) }))).Status);

        var first = http.Send("v1/completions", """{"model":"a","prompt":"x","max_tokens":60,"ignore_eos":true}""");
        // Send b only once a holds the slot, so the order does not depend on connection set-up.
        for (var i = 0; i < 500; i++)
        {
            var snapshot = EngineLoadSnapshot.From(PrometheusText.Parse(await http.GetStringAsync("metrics")), EngineMetricNames.Vllm);
            if (snapshot.RunningAdapters.Contains("a")) break;
            await Task.Delay(5);
        }
        var second = http.Send("v1/completions", """{"model":"b","prompt":"y","max_tokens":2,"ignore_eos":true}""");

        EngineLoadSnapshot? seen = null;
        for (var i = 0; i < 200 && seen is null; i++)
        {
            var snapshot = EngineLoadSnapshot.From(PrometheusText.Parse(await http.GetStringAsync("metrics")), EngineMetricNames.Vllm);
            // Between a's last token and b's admission there is a step where b waits with nothing running; skip it.
            if (snapshot.WaitingAdapters.Contains("b") && snapshot.RunningAdapters.Count > 0) seen = snapshot;
            else await Task.Delay(10);
        }
        Assert.NotNull(seen);
        Assert.True(seen!.RunningAdapters.SequenceEqual(["a"]), $"running [{string.Join(",", seen.RunningAdapters)}] waiting [{string.Join(",", seen.WaitingAdapters)}] running {seen.Running} waiting {seen.Waiting}");
        Assert.Equal(1, seen.Running);
        Assert.Equal(1, seen.Waiting);
        Assert.Equal(1, seen.MaxLoras);
        Assert.True(seen.KvCacheUsage > 0);

        Assert.Equal(200, (await first).Status);
        Assert.Equal(200, (await second).Status);
        var afterSamples = PrometheusText.Parse(await http.GetStringAsync("metrics"));
        var after = EngineLoadSnapshot.From(afterSamples, EngineMetricNames.Vllm);
        // vLLM keeps every label combination it ever exposed; the contended one is still there, just older.
        var info = afterSamples.Where(s => s.Name == "vllm:lora_requests_info").ToArray();
        var contended = info.Single(s => s.Label("running_lora_adapters") == "a" && s.Label("waiting_lora_adapters") == "b");
        Assert.True(contended.Value < info.Max(s => s.Value));
        Assert.Empty(after.RunningAdapters);
        Assert.Empty(after.WaitingAdapters);
        Assert.Equal(0, after.Running + after.Waiting);
    }

    [Fact]
    public async Task A_client_that_disconnects_frees_its_place()
    {
        await using var engine = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--mock-profile", "tiny", "--mock-time-scale", "0.01");
        using var http = Http.Client(engine.BaseUrl);
        using (var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200)))
        {
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => http.PostAsync("v1/completions",
                new StringContent("""{"prompt":"x","max_tokens":500,"ignore_eos":true}""", System.Text.Encoding.UTF8, "application/json"), cts.Token));
        }
        for (var i = 0; i < 100; i++)
        {
            var snapshot = EngineLoadSnapshot.From(PrometheusText.Parse(await http.GetStringAsync("metrics")), EngineMetricNames.Vllm);
            if (snapshot.Running + snapshot.Waiting == 0) return;
            await Task.Delay(20);
        }
        Assert.Fail("the aborted request still occupies the engine");
    }
}

public sealed class FaultAndExtraMetricTests : IDisposable
{
    private readonly TempDirectory _dir = new("me-fault");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Latency_spikes_delay_answers()
    {
        await using var engine = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--mock-zero-latency",
            "--mock-spike-rate", "1", "--mock-spike-ms", "300");
        using var http = Http.Client(engine.BaseUrl);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(200, (await http.Send("v1/completions", """{"prompt":"x","max_tokens":1}""")).Status);
        Assert.True(watch.ElapsedMilliseconds >= 290, $"{watch.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task Proposed_loaded_metric_shows_residency_when_enabled()
    {
        await using var engine = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "1",
            "--max-cpu-loras", "2", "--mock-profile", "tiny", "--mock-expose-loaded-metric");
        using var http = Http.Client(engine.BaseUrl);
        foreach (var name in new[] { "a", "b" })
            Assert.Equal(200, (await http.Send("v1/load_lora_adapter", Http.Json(new { lora_name = name, lora_path = TestAdapters.Write(_dir.Path, name) }))).Status);
        Assert.Equal(200, (await http.Send("v1/completions", """{"model":"a","prompt":"x","max_tokens":1}""")).Status);
        var samples = PrometheusText.Parse(await http.GetStringAsync("metrics")).Where(s => s.Name == "vllm:lora_adapter_loaded").ToArray();
        Assert.Equal("gpu", samples.Single(s => s.Label("adapter_name") == "a").Label("level"));
        Assert.Equal("cpu", samples.Single(s => s.Label("adapter_name") == "b").Label("level"));
        Assert.All(samples, s => Assert.Equal("false", s.Label("pinned")));
    }
}
