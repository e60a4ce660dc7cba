using HybridServing.Gateway.Demand;

namespace HybridServing.Gateway.Tests.Demand;

public sealed class DemandCounterTests
{
    [Fact]
    public void Concurrent_counts_are_all_drained_once()
    {
        var counter = new DemandCounter();
        Parallel.For(0, 4000, i => counter.Count(i % 4 == 0 ? "a" : "b"));
        var first = counter.Drain().ToDictionary(c => c.Adapter, c => c.Requests);
        Assert.Equal(1000, first["a"]);
        Assert.Equal(3000, first["b"]);
        Assert.Empty(counter.Drain()); // nothing new since: nothing to report

        counter.Count("a");
        Assert.Equal([("a", 1L)], counter.Drain());
    }
}
