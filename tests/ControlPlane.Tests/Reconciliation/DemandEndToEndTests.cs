using Grpc.Core;
using Grpc.Net.Client;
using HybridServing.Contracts.ControlPlane;
using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.TestKit;

namespace HybridServing.ControlPlane.Tests.Reconciliation;

/// <summary>Demand reported over gRPC moves replicas: a hot adapter grows onto a second engine.</summary>
public sealed class DemandEndToEndTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new("cp-demand");
    private readonly List<FakeSidecar> _sidecars = [];
    private ControlPlaneHost? _host;

    private string Manifests => _dir.Combine("manifests");

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(Manifests);
        var repo = _dir.Combine("manifests", "adapters");
        TestAdapters.Write(repo, "hot-lora", 8);
        TestAdapters.Write(repo, "cold-lora", 8);
        for (var i = 0; i < 3; i++)
        {
            // One slot per engine: replicas compete, so only observed demand can move them.
            var s = new FakeSidecar($"engine-{i}", $"node-{i}", maxLoras: 1, maxCpuLoras: 1);
            await s.StartAsync();
            _sidecars.Add(s);
        }
    }

    public async Task DisposeAsync()
    {
        if (_host is not null) await _host.DisposeAsync();
        foreach (var s in _sidecars) await s.DisposeAsync();
        _dir.Dispose();
    }

    private int Holding(string adapter) => _sidecars.Count(s => s.Desired.Contains(adapter));

    private async Task WaitForHolders(int hot, int cold, string what)
    {
        try
        {
            await ControlPlaneHost.WaitUntilAsync(() => Holding("hot-lora") == hot && Holding("cold-lora") == cold, what);
        }
        catch (TimeoutException e)
        {
            throw new TimeoutException($"{e.Message}; desired: {string.Join("; ", _sidecars.Select(s => $"{s.Name}=[{string.Join(",", s.Desired)}]"))}", e);
        }
    }

    [Fact]
    public async Task Reported_demand_grows_a_hot_adapter_onto_a_second_engine()
    {
        // "cold" first spreads over all three engines; "hot" then reclaims one of its extra replicas.
        Manifests_.Write(Manifests, "cold.yaml", Manifests_.Adapter("cold", "./adapters", adapters: ["cold-lora"], extraSpec: "  deploymentConfig:\n    replicas: {min: 1, max: 3}\n"));
        _host = await ControlPlaneHost.StartAsync(Manifests, _sidecars, extra: new Dictionary<string, string?>
        {
            ["ControlPlane:DemandWindow"] = "00:00:10",
            ["ControlPlane:RatePerReplica"] = "5",
        });
        await WaitForHolders(hot: 0, cold: 3, "cold on every engine");
        Manifests_.Write(Manifests, "hot.yaml", Manifests_.Adapter("hot", "./adapters", adapters: ["hot-lora"], extraSpec: "  deploymentConfig:\n    replicas: {min: 1, max: 2}\n"));
        await WaitForHolders(hot: 1, cold: 2, "hot on one engine, without rates");

        using var channel = GrpcChannel.ForAddress(_host.GrpcUrl);
        var router = new AdapterRouter.AdapterRouterClient(channel);
        // Two gateways, 60 + 50 requests in a 10 s window: 11 req/s asks for 3 replicas, capped at max 2.
        await router.ReportDemandAsync(new DemandReport { Gateway = "gw-a", WindowSeconds = 5, Adapters = { new AdapterDemandSample { Name = "hot-lora", Requests = 60 } } });
        await router.ReportDemandAsync(new DemandReport { Gateway = "gw-b", WindowSeconds = 5, Adapters = { new AdapterDemandSample { Name = "hot-lora", Requests = 50 } } });

        await WaitForHolders(hot: 2, cold: 1, "the hot adapter on a second engine, the cold one at its minimum");
        await _host.WaitForAsync("hot", a => a.Status?.PodAssignments?.Count == 2);
    }

    [Fact]
    public async Task Malformed_demand_reports_are_rejected_with_a_specific_error()
    {
        _host = await ControlPlaneHost.StartAsync(Manifests, _sidecars);
        using var channel = GrpcChannel.ForAddress(_host.GrpcUrl);
        var router = new AdapterRouter.AdapterRouterClient(channel);

        var noGateway = await Assert.ThrowsAsync<RpcException>(() => router.ReportDemandAsync(new DemandReport()).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, noGateway.StatusCode);
        Assert.Contains("gateway is required", noGateway.Status.Detail);

        var negative = await Assert.ThrowsAsync<RpcException>(() => router.ReportDemandAsync(
            new DemandReport { Gateway = "gw", Adapters = { new AdapterDemandSample { Name = "x", Requests = -1 } } }).ResponseAsync);
        Assert.Equal(StatusCode.InvalidArgument, negative.StatusCode);
        Assert.Contains("'x'", negative.Status.Detail);

        var noName = await Assert.ThrowsAsync<RpcException>(() => router.ReportDemandAsync(
            new DemandReport { Gateway = "gw", Adapters = { new AdapterDemandSample { Requests = 3 } } }).ResponseAsync);
        Assert.Contains("needs a name", noName.Status.Detail);
    }
}
