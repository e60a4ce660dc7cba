using HybridServing.Contracts.Sidecar;
using HybridServing.ControlPlane.Engines;
using HybridServing.ControlPlane.Homes;
using HybridServing.ControlPlane.Placement;
using HybridServing.ControlPlane.Reconciliation;
using HybridServing.ControlPlane.Routing;
using HybridServing.ControlPlane.Sources;

namespace HybridServing.ControlPlane.Tests.Routing;

public sealed class RoutingTableBuilderTests
{
    private static EngineView View(string sidecarUrl, string reportedEngineUrl) => new(
        new EngineEndpoint("vllm-0", "node-0", new Uri(sidecarUrl), new Dictionary<string, string>()),
        new EngineInfo { EngineUrl = reportedEngineUrl, MaxLoras = 4, MaxCpuLoras = 4 },
        new Dictionary<string, AdapterStatus>(), null, true, null, null, null, 0, null);

    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(20);

    private static Contracts.ControlPlane.Engine Published(EngineView view, DateTimeOffset at)
    {
        var empty = new Plan(new Dictionary<string, IReadOnlyList<string>>(), new Dictionary<string, IReadOnlyList<string>>(), new Dictionary<string, Shortfall>(), []);
        var model = new ReconcileModel(1, at, [], new Dictionary<string, (ResourceState, DiscoveredAdapter)>(),
            new Dictionary<string, AdapterDemand>(), empty, [view], [], [], [], empty);
        return RoutingTableBuilder.Build(model, new Dictionary<string, EngineView> { ["vllm-0"] = view }, Grace).Engines.Single();
    }

    private static string PublishedUrl(EngineView view) => Published(view, DateTimeOffset.UnixEpoch).Url;

    [Theory]
    // Trial 2 of tests/Reliability.Tests: a killed sidecar used to take its (serving) engine out of routing at once.
    [InlineData(true, null, true)]
    [InlineData(false, 0, true)]
    [InlineData(false, 19, true)]
    [InlineData(false, 20, false)]
    [InlineData(true, null, false, false)]
    public void A_lost_sidecar_leaves_its_engine_routable_for_the_grace_period(bool connected, int? disconnectedSecondsAgo, bool healthy, bool engineHealthy = true)
    {
        var at = DateTimeOffset.UnixEpoch.AddHours(1);
        var view = View("http://127.0.0.1:9001", "http://127.0.0.1:8000/") with
        {
            Connected = connected,
            DisconnectedSince = disconnectedSecondsAgo is { } s ? at.AddSeconds(-s) : null,
            Load = new EngineLoad { Healthy = engineHealthy },
        };
        Assert.Equal(healthy, Published(view, at).Healthy);
    }

    [Theory]
    // A sidecar in a pod (reached at the pod IP) that reports its engine on the pod's loopback: the
    // gateway's own loopback would be a different machine, so the pod IP is published.
    [InlineData("http://10.4.0.7:9001", "http://127.0.0.1:8000/", "http://10.4.0.7:8000/")]
    [InlineData("http://10.4.0.7:9001", "http://localhost:8000/", "http://10.4.0.7:8000/")]
    [InlineData("http://10.4.0.7:9001", "http://0.0.0.0:8000/", "http://10.4.0.7:8000/")]
    [InlineData("http://[fd00::7]:9001", "http://[::1]:8000/", "http://[fd00::7]:8000/")]
    // Already reachable (the sidecar advertised the pod IP or a name): published as reported.
    [InlineData("http://10.4.0.7:9001", "http://10.4.0.7:8000/", "http://10.4.0.7:8000/")]
    [InlineData("http://10.4.0.7:9001", "http://vllm-0.engines:8000/", "http://vllm-0.engines:8000/")]
    // The local home: every process shares one loopback.
    [InlineData("http://127.0.0.1:9001", "http://127.0.0.1:8000/", "http://127.0.0.1:8000/")]
    public void Publishes_an_engine_url_reachable_from_outside_the_pod(string sidecarUrl, string reported, string published) =>
        Assert.Equal(published, PublishedUrl(View(sidecarUrl, reported)));
}
