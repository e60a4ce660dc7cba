using System.Text.Json;
using HybridServing.Contracts.Metrics;
using HybridServing.MockEngine.Performance;
using HybridServing.TestKit;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.MockEngine.Tests;

/// <summary>vLLM's sleep mode over HTTP: the dev-mode routes, the 503 while asleep, the metric, and the modelled wake time.</summary>
public sealed class SleepModeConformanceTests
{
    private static readonly MockEngineHostOptions DevMode = new()
    {
        Environment = new Dictionary<string, string> { [MockEngineCommandLine.ServerDevModeVariable] = "1" },
    };

    private const string Chat = """{"model":"test/tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":4}""";

    private static Task<MockEngineHost> Start(MockEngineHostOptions options, params string[] extra) =>
        MockEngineHost.StartAsync(options, ["--model", TestAdapters.TinyModel, "--mock-profile", "tiny", "--mock-time-scale", "20", .. extra]);

    [Fact]
    public async Task Routes_exist_only_in_dev_mode_like_vllm()
    {
        await using var engine = await Start(new MockEngineHostOptions(), "--enable-sleep-mode");
        using var http = Http.Client(engine.BaseUrl);
        var sleep = await http.Send("sleep", "");
        Assert.Equal(404, sleep.Status);
        Assert.Equal("Not Found", sleep.Body.GetProperty("detail").GetString());
        Assert.Equal(404, (int)(await http.GetAsync("is_sleeping")).StatusCode);
        // The sleep gauge is there with the flag even without dev mode (vLLM registers it from the engine config).
        Assert.Contains("vllm:engine_sleep_state{", await http.GetStringAsync("metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Sleeping_engine_refuses_inference_reports_it_and_serves_again_after_wake_up()
    {
        await using var engine = await Start(DevMode, "--enable-sleep-mode");
        using var http = Http.Client(engine.BaseUrl);
        Assert.False(await IsSleeping(http));
        Assert.Equal(1, SleepState(await Metrics(http), "awake"));

        var slept = await http.Send("sleep?level=1", "");
        Assert.Equal(200, slept.Status);
        Assert.True(await IsSleeping(http));
        var metrics = await Metrics(http);
        Assert.Equal(1, SleepState(metrics, "weights_offloaded"));
        Assert.Equal(0, SleepState(metrics, "awake"));
        Assert.Equal(0, EngineLoadSnapshot.From(metrics, EngineMetricNames.Vllm).KvCacheUsage);

        (await http.Send("v1/chat/completions", Chat)).AssertError(503, "ServiceUnavailableError",
            "The engine is sleeping (sleep mode); wake it with POST /wake_up.");
        (await http.Send("v1/completions", """{"model":"test/tiny","prompt":"x","max_tokens":2}""")).AssertError(503, "ServiceUnavailableError",
            "The engine is sleeping (sleep mode); wake it with POST /wake_up.");
        // Routes that do not need the weights keep working, as in vLLM.
        Assert.Equal(200, (int)(await http.GetAsync("v1/models")).StatusCode);
        Assert.Equal(200, (int)(await http.GetAsync("health")).StatusCode);
        // A second sleep is a no-op, as vLLM's executor makes it.
        Assert.Equal(200, (await http.Send("sleep?level=2", "")).Status);
        Assert.Equal(1, SleepState(await Metrics(http), "weights_offloaded"));

        Assert.Equal(200, (await http.Send("wake_up", "")).Status);
        Assert.False(await IsSleeping(http));
        Assert.Equal(1, SleepState(await Metrics(http), "awake"));
        Assert.Equal(200, (await http.Send("v1/chat/completions", Chat)).Status);
    }

    [Fact]
    public async Task Wake_up_by_tags_stays_asleep_until_both_tags_are_awake()
    {
        await using var engine = await Start(DevMode, "--enable-sleep-mode");
        using var http = Http.Client(engine.BaseUrl);
        Assert.Equal(200, (await http.Send("sleep?level=2", "")).Status);
        Assert.Equal(1, SleepState(await Metrics(http), "discard_all"));
        Assert.Equal(200, (await http.Send("wake_up?tags=weights", "")).Status);
        Assert.True(await IsSleeping(http));
        Assert.Equal(503, (await http.Send("v1/chat/completions", Chat)).Status);
        // Waking an awake tag again changes nothing.
        Assert.Equal(200, (await http.Send("wake_up?tags=weights", "")).Status);
        Assert.True(await IsSleeping(http));
        Assert.Equal(200, (await http.Send("wake_up?tags=kv_cache", "")).Status);
        Assert.False(await IsSleeping(http));
        Assert.Equal(200, (await http.Send("v1/chat/completions", Chat)).Status);
    }

    [Fact]
    public async Task Wrong_input_is_refused_naming_the_parameter()
    {
        await using var engine = await Start(DevMode, "--enable-sleep-mode");
        using var http = Http.Client(engine.BaseUrl);
        (await http.Send("sleep?level=3", "")).AssertError(400, "Bad Request",
            "level: '3' is not a sleep level; use 1 (offload weights to host memory) or 2 (discard weights).");
        Assert.False(await IsSleeping(http));
        (await http.Send("wake_up?tags=gpu", "")).AssertError(400, "Bad Request", "tags: 'gpu' is not a memory tag; use weights or kv_cache.");
        using var get = await http.GetAsync("sleep");
        Assert.Equal(405, (int)get.StatusCode);
        Assert.Equal("POST", get.Content.Headers.Allow.Single());

        await using var plain = await Start(DevMode);
        using var plainHttp = Http.Client(plain.BaseUrl);
        (await plainHttp.Send("sleep", "")).AssertError(400, "Bad Request", "Sleep mode is not enabled; start the engine with --enable-sleep-mode.");
        Assert.DoesNotContain("vllm:engine_sleep_state", await plainHttp.GetStringAsync("metrics"), StringComparison.Ordinal);
        Assert.Equal(200, (await plainHttp.Send("v1/chat/completions", Chat)).Status);
    }

    [Fact]
    public async Task Sleep_lets_admitted_streams_finish_and_refuses_new_ones()
    {
        // A slow clock so the stream is still running when the sleep arrives.
        await using var engine = await MockEngineHost.StartAsync(DevMode,
            "--model", TestAdapters.TinyModel, "--mock-profile", "tiny", "--mock-time-scale", "0.05", "--enable-sleep-mode");
        using var http = Http.Client(engine.BaseUrl);
        var stream = http.Send("v1/completions", """{"model":"test/tiny","prompt":"x","max_tokens":40,"ignore_eos":true}""");
        for (var i = 0; i < 500 && engine.Inspector.Snapshot().Running == 0; i++) await Task.Delay(5);
        Assert.Equal(1, engine.Inspector.Snapshot().Running);

        var sleep = http.Send("sleep", "");
        for (var i = 0; i < 500 && !await IsSleeping(http); i++) await Task.Delay(5);
        Assert.Equal(503, (await http.Send("v1/completions", """{"model":"test/tiny","prompt":"y","max_tokens":1}""")).Status);
        Assert.False(sleep.IsCompleted);

        var finished = await stream;
        Assert.Equal(200, finished.Status);
        Assert.Equal(40, finished.Body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(200, (await sleep).Status);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public async Task Wake_up_takes_the_modelled_weight_transfer_time(int level)
    {
        var clock = new FakeTimeProvider(DateTimeOffset.UnixEpoch.AddDays(20_000));
        await using var engine = await MockEngineHost.StartAsync(DevMode with { TimeProvider = clock },
            "--model", TestAdapters.TinyModel, "--mock-profile", "tiny", "--enable-sleep-mode");
        using var http = Http.Client(engine.BaseUrl);
        var slept = await http.Send($"sleep?level={level}", "");
        Assert.True(slept.Status == 200, $"sleep: {slept.Status} {slept.Text}");

        var profile = PerformanceProfile.Tiny;
        var expected = profile.HostToGpu.SecondsFor(profile.WeightBytes)
            + (level == 2 ? profile.LocalDiskToHost.SecondsFor(profile.WeightBytes) : 0);
        var wake = http.Send("wake_up", "");
        var step = TimeSpan.FromMilliseconds(level == 1 ? 2 : 10);
        var advanced = TimeSpan.Zero;
        // Advancing before the wake registers its timer does not count towards it, so the total is a lower bound.
        while (!wake.IsCompleted && advanced < TimeSpan.FromSeconds(30))
        {
            await Task.Delay(1);
            clock.Advance(step);
            advanced += step;
        }
        var woke = await wake;
        Assert.True(woke.Status == 200, $"wake_up: {woke.Status} {woke.Text}");
        Assert.True(advanced.TotalSeconds >= expected, $"woke after {advanced.TotalSeconds:F3} model s, modelled {expected:F3} s");
        Assert.False(await IsSleeping(http));
    }

    private static async Task<bool> IsSleeping(HttpClient http)
    {
        using var doc = JsonDocument.Parse(await http.GetStringAsync("is_sleeping"));
        return doc.RootElement.GetProperty("is_sleeping").GetBoolean();
    }

    private static async Task<IReadOnlyList<MetricSample>> Metrics(HttpClient http) => PrometheusText.Parse(await http.GetStringAsync("metrics"));

    private static double SleepState(IReadOnlyList<MetricSample> samples, string state) =>
        samples.Single(s => s.Name == "vllm:engine_sleep_state" && s.Label("sleep_state") == state).Value;
}
