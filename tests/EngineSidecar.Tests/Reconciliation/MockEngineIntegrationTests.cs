using System.Diagnostics;
using System.Net.Http.Json;
using HybridServing.Contracts.OpenAi;
using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;
using static HybridServing.EngineSidecar.Tests.Infrastructure.StateWaits;

namespace HybridServing.EngineSidecar.Tests.Reconciliation;

/// <summary>The sidecar against real MockEngines (in-process, real Kestrel, vLLM's HTTP API).</summary>
public sealed class MockEngineIntegrationTests
{
    private static async Task<string[]> EngineAdaptersAsync(Uri engine, string? apiKey = null)
    {
        using var http = new HttpClient { BaseAddress = engine, Timeout = TimeSpan.FromSeconds(2) };
        if (apiKey is not null) http.DefaultRequestHeaders.Authorization = new("Bearer", apiKey);
        try
        {
            var list = await http.GetFromJsonAsync<ModelList>("v1/models", OpenAiJson.Options);
            return list!.Data.Where(m => m.Parent is not null).Select(m => m.Id).Order().ToArray();
        }
        catch (HttpRequestException)
        {
            return [];
        }
    }

    [Fact]
    public async Task A_restarted_engine_gets_its_desired_adapters_back_within_5_seconds()
    {
        using var dir = new TempDirectory("mi-drift");
        var a = TestAdapters.Write(dir.Path, "d1");
        var b = TestAdapters.Write(dir.Path, "d2", rank: 16);
        await using var engine = await MockEngineHost.StartAsync("--model", "test/tiny", "--enable-lora", "--max-loras", "2", "--max-lora-rank", "16");
        await using var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"), dir.Path));
        await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest { Generation = 1, Adapters = { Spec("d1", a), Spec("d2", b) } });
        await host.WaitForStateAsync(s => s.Adapters.Count == 2 && s.Adapters.All(x => x.Phase == AdapterPhase.Loaded), what: "both loaded");
        Assert.Equal(["d1", "d2"], await EngineAdaptersAsync(engine.BaseUrl));

        // Kill: the sidecar sees the engine unhealthy.
        await engine.StopAsync();
        await host.WaitForStateAsync(s => !s.Load.Healthy, what: "engine unhealthy");

        // Restart empty on the same port: the sidecar restores the set by itself.
        var restarted = Stopwatch.StartNew();
        await engine.RestartAsync();
        Assert.Empty(await EngineAdaptersAsync(engine.BaseUrl));
        while ((await EngineAdaptersAsync(engine.BaseUrl)).Length < 2 && restarted.Elapsed < TimeSpan.FromSeconds(10))
            await Task.Delay(50);
        Assert.Equal(["d1", "d2"], await EngineAdaptersAsync(engine.BaseUrl));
        Assert.True(restarted.Elapsed < TimeSpan.FromSeconds(5), $"restored after {restarted.Elapsed}");
        await host.WaitForStateAsync(s => s.Load.Healthy && s.Adapters.All(x => x.Phase == AdapterPhase.Loaded), what: "loaded again");

        // Drift without a restart: someone unloads an adapter behind the sidecar's back.
        using var http = new HttpClient { BaseAddress = engine.BaseUrl };
        (await http.PostAsJsonAsync("v1/unload_lora_adapter", new { lora_name = "d1" })).EnsureSuccessStatusCode();
        var sw = Stopwatch.StartNew();
        while (!(await EngineAdaptersAsync(engine.BaseUrl)).Contains("d1") && sw.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(50);
        Assert.Contains("d1", await EngineAdaptersAsync(engine.BaseUrl));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5));

        var metrics = await new HttpClient().GetStringAsync(new Uri(host.HttpUrl, "metrics"));
        Assert.Contains("hybridserving_sidecar_drift_repairs_total", metrics);
    }

    [Fact]
    public async Task Adapters_the_sidecar_does_not_want_are_unloaded_only_once_a_desired_set_arrived()
    {
        using var dir = new TempDirectory("mi-foreign");
        var foreign = TestAdapters.Write(dir.Path, "foreign");
        var mine = TestAdapters.Write(dir.Path, "mine");
        await using var engine = await MockEngineHost.StartAsync("--model", "test/tiny", "--enable-lora", "--max-loras", "2",
            "--lora-modules", $"foreign={foreign}");
        await using var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"), dir.Path));
        // Before any desired set the sidecar leaves the engine alone (a restarted sidecar must not strip it bare).
        await host.WaitForStateAsync(s => s.Info.BaseModels.Count == 1, what: "info");
        await host.Client.LoadAsync(new LoadRequest { Adapter = Spec("mine", mine) });
        await host.WaitForPhaseAsync("mine", AdapterPhase.Loaded);
        Assert.Equal(["foreign", "mine"], await EngineAdaptersAsync(engine.BaseUrl));

        await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest { Adapters = { Spec("mine", mine) } });
        var sw = Stopwatch.StartNew();
        while ((await EngineAdaptersAsync(engine.BaseUrl)).Contains("foreign") && sw.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(50);
        Assert.Equal(["mine"], await EngineAdaptersAsync(engine.BaseUrl));
    }

    [Fact]
    public async Task Engine_refusals_surface_with_the_engines_words_and_the_api_key_is_sent_but_never_logged()
    {
        using var dir = new TempDirectory("mi-refuse");
        var big = TestAdapters.Write(dir.Path, "big", rank: 16);
        var ok = TestAdapters.Write(dir.Path, "ok", rank: 8);
        const string apiKey = "sk-never-log-this-7f3a";
        await using var engine = await MockEngineHost.StartAsync("--model", "test/tiny", "--enable-lora", "--max-lora-rank", "8", "--api-key", apiKey);
        var settings = SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"), dir.Path);
        // The sidecar believes the engine takes rank 16, so the engine itself must refuse.
        settings["Sidecar:MaxLoraRank"] = "16";
        settings["Sidecar:EngineApiKey"] = apiKey;
        await using var host = await SidecarHost.StartAsync(settings);
        await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest { Adapters = { Spec("big", big), Spec("ok", ok) } });
        var state = await host.WaitForStateAsync(s => s.Adapter("big")?.Phase == AdapterPhase.Failed && s.Adapter("ok")?.Phase == AdapterPhase.Loaded, what: "big refused, ok loaded");
        Assert.Equal("EngineRejected", state.Adapter("big")!.Reason);
        Assert.Contains("LoRA rank 16 is greater than max_lora_rank 8", state.Adapter("big")!.Message);
        Assert.Equal(["ok"], await EngineAdaptersAsync(engine.BaseUrl, apiKey));
        Assert.DoesNotContain(CapturingLoggerProvider.Lines, l => l.Contains(apiKey, StringComparison.Ordinal));
    }

    [Fact]
    public async Task Transient_engine_failures_are_retried_until_the_adapter_loads()
    {
        using var dir = new TempDirectory("mi-5xx");
        var a = TestAdapters.Write(dir.Path, "flaky");
        await using var engine = await FakeEngine.StartAsync();
        engine.FailNextLoads = 4; // more than one pass's three attempts
        await using var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"), dir.Path));
        await host.Client.LoadAsync(new LoadRequest { Adapter = Spec("flaky", a) });
        var failed = await host.WaitForPhaseAsync("flaky", AdapterPhase.Failed);
        Assert.Equal("EngineUnavailable", failed.Adapter("flaky")!.Reason);
        Assert.Contains("503", failed.Adapter("flaky")!.Message);
        await host.WaitForPhaseAsync("flaky", AdapterPhase.Loaded, TimeSpan.FromSeconds(10));
        Assert.Equal(5, engine.LoadCalls("flaky"));
    }

    [Fact]
    public async Task Http_sources_show_Downloading_with_bytes_then_Loaded_and_a_new_digest_reloads_in_place()
    {
        using var dir = new TempDirectory("mi-http");
        var v1 = TestAdapters.Write(dir.Path, "v1", rank: 8);
        var v2 = TestAdapters.Write(dir.Path, "v2", rank: 16);
        var digest1 = await Contracts.Peft.PeftAdapter.ComputeDigestAsync(Path.Combine(v1, "adapter_model.safetensors"));
        var digest2 = await Contracts.Peft.PeftAdapter.ComputeDigestAsync(Path.Combine(v2, "adapter_model.safetensors"));
        await using var server = await ArtifactServer.StartAsync();
        server.AddAdapter("v1", v1);
        server.AddAdapter("v2", v2);
        server.Behaviour["v1/adapter_config.json"] = Misbehaviour.SlowStart;
        await using var engine = await MockEngineHost.StartAsync("--model", "test/tiny", "--enable-lora", "--max-lora-rank", "16");
        await using var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache")));

        var phases = new List<AdapterPhase>();
        var watch = host.WaitForStateAsync(s =>
        {
            if (s.Adapter("web") is { } a && (phases.Count == 0 || phases[^1] != a.Phase)) phases.Add(a.Phase);
            return s.Adapter("web")?.Phase == AdapterPhase.Loaded;
        }, what: "web loaded");
        await host.Client.LoadAsync(new LoadRequest { Adapter = Spec("web", server.BaseUrl + "v1", digest1) });
        var loaded = await watch;
        Assert.Contains(AdapterPhase.Downloading, phases);
        Assert.Equal(AdapterPhase.Loaded, phases[^1]);
        var status = loaded.Adapter("web")!;
        Assert.Equal(digest1, status.Digest);
        Assert.True(status.BytesTotal > 0 && status.BytesDownloaded == status.BytesTotal, status.ToString());
        Assert.StartsWith(Path.Combine(dir.Combine("cache"), "artifacts"), status.LocalPath);

        await host.Client.LoadAsync(new LoadRequest { Adapter = Spec("web", server.BaseUrl + "v2", digest2) });
        var reloaded = await host.WaitForStateAsync(s => s.Adapter("web") is { Phase: AdapterPhase.Loaded, Rank: 16 }, what: "reloaded v2");
        Assert.Equal(digest2, reloaded.Adapter("web")!.Digest);
        Assert.Equal(["web"], await EngineAdaptersAsync(engine.BaseUrl));
    }

    [Fact]
    public async Task Residency_comes_from_the_engines_loaded_metric_when_it_has_one()
    {
        using var dir = new TempDirectory("mi-res");
        var a = TestAdapters.Write(dir.Path, "r1");
        var b = TestAdapters.Write(dir.Path, "r2");
        await using var engine = await MockEngineHost.StartAsync("--model", "test/tiny", "--enable-lora", "--max-loras", "1", "--max-cpu-loras", "2",
            "--mock-expose-loaded-metric");
        await using var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"), dir.Path));
        var pinned = Spec("r1", a);
        pinned.Pinned = true;
        await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest { Adapters = { pinned, Spec("r2", b) } });
        var state = await host.WaitForStateAsync(s => s.Adapters.Count == 2 && s.Adapters.All(x => x.Phase == AdapterPhase.Loaded && x.Residency.Length > 0),
            what: "residency known");
        Assert.All(state.Adapters, x => Assert.Contains(x.Residency, new[] { "gpu", "cpu", "disk" }));
        Assert.True(state.Adapter("r1")!.Pinned);
        Assert.False(state.Adapter("r2")!.Pinned);
    }
}
