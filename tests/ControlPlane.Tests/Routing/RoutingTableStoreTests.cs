using HybridServing.Contracts.ControlPlane;
using HybridServing.ControlPlane.Routing;

namespace HybridServing.ControlPlane.Tests.Routing;

public sealed class RoutingTableStoreTests
{
    private static RoutingTable Table(params string[] adapters)
    {
        var t = new RoutingTable();
        t.Adapters.AddRange(adapters.Select(a => new AdapterRoute { Name = a, BaseModel = "m" }));
        return t;
    }

    [Fact]
    public async Task Versions_move_only_when_the_content_changes_and_wake_waiters()
    {
        var store = new RoutingTableStore();
        Assert.True(store.Publish(Table("a")));
        Assert.Equal(1, store.Current.Version);
        Assert.False(store.Publish(Table("a")));
        Assert.Equal(1, store.Current.Version);

        var waiting = store.WaitForNewerAsync(1, CancellationToken.None);
        Assert.False(waiting.IsCompleted);
        Assert.True(store.Publish(Table("a", "b")));
        await waiting.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(2, store.Current.Version);
        Assert.True(store.WaitForNewerAsync(1, CancellationToken.None).IsCompleted);
    }
}
