using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Routing;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests.Routing;

public sealed class RoutingSnapshotTests
{
    [Fact]
    public void Resolves_base_models_before_adapters_and_unknown_to_null()
    {
        var table = Table(1, [Engine("e1", new Uri("http://127.0.0.1:1"))], Adapter("sql", endpoints: ("e1", Residency.Loaded)), Adapter(Base));
        var snapshot = RoutingSnapshot.From(table, DateTimeOffset.UnixEpoch);
        Assert.Null(snapshot.Resolve(Base)!.Adapter);
        Assert.Equal("sql", snapshot.Resolve("sql")!.Adapter!.Name);
        Assert.Equal(Base, snapshot.Resolve("sql")!.BaseModel);
        Assert.Null(snapshot.Resolve("nope"));
    }

    [Fact]
    public void Resolve_hands_out_one_shared_instance_per_name()
    {
        var table = Table(1, [Engine("e1", new Uri("http://127.0.0.1:1"))], Adapter("sql", endpoints: ("e1", Residency.Loaded)));
        var snapshot = RoutingSnapshot.From(table, DateTimeOffset.UnixEpoch);
        Assert.Same(snapshot.Resolve("sql"), snapshot.Resolve("sql"));
        Assert.Same(snapshot.Resolve(Base), snapshot.Resolve(Base));
        Assert.Equal(new ResolvedModel(Base, Base, null), snapshot.Resolve(Base));
    }

    [Theory]
    [InlineData("http://127.0.0.1:1", "http://127.0.0.1:1")]
    [InlineData("http://127.0.0.1:1/", "http://127.0.0.1:1")]
    [InlineData("http://127.0.0.1:1/engine/?x=1#f", "http://127.0.0.1:1/engine")]
    public void Engine_destination_prefix_drops_query_and_trailing_slash(string url, string prefix) =>
        Assert.Equal(prefix, new EngineRoute("e", new Uri(url), new HashSet<string>(), true, 1, 1).DestinationPrefix);

    [Fact]
    public void Skips_engines_without_usable_urls_and_keeps_the_stronger_residency()
    {
        var table = Table(4,
            [Engine("ok", new Uri("http://127.0.0.1:1")), new Engine { Name = "bad", Url = "not a url" }, new Engine { Name = "ftp", Url = "ftp://x/" }, new Engine { Name = "", Url = "http://x/" }],
            Adapter("a", "", ("ok", Residency.Loading), ("ok", Residency.Loaded)), Adapter("a"));
        var snapshot = RoutingSnapshot.From(table, DateTimeOffset.UnixEpoch);
        Assert.Equal(["ok"], snapshot.Engines.Keys.ToArray());
        var a = Assert.Single(snapshot.Adapters.Values);
        Assert.True(a.IsLoadedOn("ok"));
        Assert.Equal("default", a.Namespace);
    }

    [Fact]
    public async Task Datastore_wait_never_misses_a_publish_between_read_and_wait()
    {
        var store = new RoutingDatastore();
        var seen = store.Current;
        store.Publish(new RoutingSnapshot(1, DateTimeOffset.UnixEpoch, [], []));
        Assert.True(store.WaitForChangeAsync(seen, CancellationToken.None).IsCompleted);
        var current = store.Current;
        var waiting = store.WaitForChangeAsync(current, CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        store.Publish(new RoutingSnapshot(2, DateTimeOffset.UnixEpoch, [], []));
        await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(store.Synced);
    }
}
