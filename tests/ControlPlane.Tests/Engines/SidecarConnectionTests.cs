using System.Collections.Concurrent;
using HybridServing.Contracts.Sidecar;
using HybridServing.ControlPlane.Engines;
using HybridServing.ControlPlane.Homes;
using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.TestKit;
using Microsoft.Extensions.Logging.Abstractions;

namespace HybridServing.ControlPlane.Tests.Engines;

/// <summary>The connection to one sidecar over real gRPC: what it reports upwards.</summary>
public sealed class SidecarConnectionTests
{
    [Fact]
    public async Task Each_adapter_becoming_loaded_is_reported_once_before_the_view_change()
    {
        await using var sidecar = new FakeSidecar("engine-0", "node-0");
        await sidecar.StartAsync();
        await using var connection = new SidecarConnection(new EngineEndpoint("engine-0", "node-0", sidecar.Url, new Dictionary<string, string>()),
            new ControlPlaneOptions(), TimeProvider.System, NullLogger.Instance, initialGeneration: 1);
        var events = new ConcurrentQueue<string>();
        connection.AdapterLoaded += (engine, adapter) => events.Enqueue($"loaded {engine}/{adapter}");
        connection.Changed += () => events.Enqueue("changed");
        connection.Start();
        await ControlPlaneHost.WaitUntilAsync(() => connection.View.Connected, "connected");

        Assert.True(await connection.EnsureAsync([Spec("a"), Spec("b")], CancellationToken.None));
        await ControlPlaneHost.WaitUntilAsync(() => events.Count(e => e.StartsWith("loaded", StringComparison.Ordinal)) == 2, "a and b reported");
        // The sidecar's state stream repeats both as LOADED: no second report.
        sidecar.SimulateLoaded("c");
        await ControlPlaneHost.WaitUntilAsync(() => events.SkipWhile(e => e != "loaded engine-0/c").Contains("changed"), "c reported, then the view change");

        var seen = events.ToArray();
        Assert.Equal(["loaded engine-0/a", "loaded engine-0/b", "loaded engine-0/c"], seen.Where(e => e.StartsWith("loaded", StringComparison.Ordinal)).Order());
        // A report comes before the view change that carries it.
        Assert.Equal("changed", seen[Array.IndexOf(seen, "loaded engine-0/c") + 1]);
    }

    private static AdapterSpec Spec(string name) => new() { Name = name, Source = $"file:///adapters/{name}", BaseModel = TestAdapters.TinyModel };
}
