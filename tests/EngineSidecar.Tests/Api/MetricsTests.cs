using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;
using static HybridServing.EngineSidecar.Tests.Infrastructure.StateWaits;

namespace HybridServing.EngineSidecar.Tests.Api;

public sealed class MetricsTests
{
    [Fact]
    public async Task Prometheus_metrics_cover_state_durations_bytes_failures_and_cache()
    {
        using var dir = new TempDirectory("metrics");
        var ok = TestAdapters.Write(dir.Combine("root"), "metric-ok");
        await using var server = await ArtifactServer.StartAsync();
        server.AddAdapter("m", TestAdapters.Write(dir.Path, "metric-web"));
        await using var engine = await FakeEngine.StartAsync();
        await using var host = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"), dir.Combine("root")));
        await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest
        {
            Adapters = { Spec("metric-ok", ok), Spec("metric-web", server.BaseUrl + "m"), Spec("metric-bad", "/nowhere/x") },
        });
        await host.WaitForStateAsync(s => s.Adapter("metric-ok")?.Phase == AdapterPhase.Loaded && s.Adapter("metric-web")?.Phase == AdapterPhase.Loaded
            && s.Adapter("metric-bad")?.Phase == AdapterPhase.Failed, what: "settled");

        var text = await new HttpClient().GetStringAsync(new Uri(host.HttpUrl, "metrics"));
        Assert.Contains("hybridserving_sidecar_adapter_state{adapter=\"metric-ok\",phase=\"loaded\"} 1", text);
        Assert.Contains("hybridserving_sidecar_adapter_state{adapter=\"metric-bad\",phase=\"failed\"} 1", text);
        Assert.DoesNotContain("hybridserving_sidecar_adapter_state{adapter=\"metric-ok\",phase=\"pending\"}", text);
        Assert.Contains("hybridserving_sidecar_adapter_load_duration_seconds_bucket{result=\"success\"", text);
        Assert.Contains("hybridserving_sidecar_artifact_download_duration_seconds_count{source=\"http\",result=\"success\"}", text);
        Assert.Contains("hybridserving_sidecar_artifact_downloaded_bytes_total{source=\"http\"}", text);
        Assert.Contains("hybridserving_sidecar_failures_total{reason=\"PathNotAllowed\"}", text);
        Assert.Contains("hybridserving_sidecar_cache_bytes", text);
        Assert.Contains("hybridserving_sidecar_cache_budget_bytes", text);
        Assert.Contains("hybridserving_sidecar_engine_healthy 1", text);
        var health = await new HttpClient().GetAsync(new Uri(host.HttpUrl, "health"));
        Assert.True(health.IsSuccessStatusCode);
    }
}
