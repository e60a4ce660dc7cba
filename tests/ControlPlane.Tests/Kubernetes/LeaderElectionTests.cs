using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Kubernetes;
using HybridServing.KubeApiTestServer;
using k8s.Models;
using Microsoft.Extensions.Logging.Abstractions;
using static HybridServing.ControlPlane.Tests.Kubernetes.KubeHarness;

namespace HybridServing.ControlPlane.Tests.Kubernetes;

public sealed class LeaderElectionTests
{
    private static LeaseLeadership Leadership(KubeApiServer server, string identity, KubernetesHomeOptions options) =>
        new(ApiFor(server), options, Ns, identity, NullLogger.Instance);

    [Fact]
    public async Task Only_the_leader_writes_and_the_follower_takes_over_when_it_goes()
    {
        await using var server = await KubeApiServer.StartAsync();
        server.Seed(Adapter("sql"));
        // Generous renewals: a loaded test machine must not lose the lease by accident; hand-over is by release.
        var options = FastOptions(o => { o.LeaderElection = true; o.LeaseDuration = TimeSpan.FromSeconds(4); o.RenewDeadline = TimeSpan.FromSeconds(3); o.RetryPeriod = TimeSpan.FromMilliseconds(200); });
        var leadershipA = Leadership(server, "replica-a", options);
        var leadershipB = Leadership(server, "replica-b", options);
        var homeA = Home(server, options, leadershipA, identity: "replica-a");
        await using var homeB = Home(server, options, leadershipB, identity: "replica-b");
        await using var _ = leadershipB;
        try
        {
            leadershipA.Start();
            await WaitUntilAsync(() => leadershipA.IsLeader, "replica-a leads");
            leadershipB.Start();
            await homeA.StartAsync(CancellationToken.None);
            await homeB.StartAsync(CancellationToken.None);
            await WaitUntilAsync(() => homeA.Synced && homeB.InformersSynced && homeA.Current.Adapters.Count == 1 && homeB.Current.Adapters.Count == 1, "both informed");
            await WaitUntilAsync(() => leadershipB.Leader == "replica-a", "replica-b sees replica-a lead");
            Assert.False(leadershipB.IsLeader);
            Assert.True(homeB.Synced); // a follower decides for its routing table; only the leader writes
            Assert.Equal("replica-a", server.Get<V1Lease>(Ns, options.LeaseName)!.Spec.HolderIdentity);

            // Both reconcile; only the leader's status reaches the cluster.
            await homeB.WriteStatusAsync([WithStatus(homeB.Current.Adapters[0].Resource, Status(LoraAdapterPhases.Failed))], CancellationToken.None);
            await homeA.WriteStatusAsync([WithStatus(homeA.Current.Adapters[0].Resource, Status(LoraAdapterPhases.Ready, "from-a"))], CancellationToken.None);
            await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Status?.Phase == LoraAdapterPhases.Ready, "the leader's status");
            await Task.Delay(200);
            Assert.Equal(LoraAdapterPhases.Ready, server.Get<LoraAdapter>(Ns, "sql")!.Status!.Phase);
            Assert.Equal(0, homeB.StatusWrites);
        }
        finally
        {
            // replica-a shuts down: it stops leading and hands the lease back.
            await leadershipA.DisposeAsync();
            await homeA.DisposeAsync();
        }

        // Handed back, not expired: replica-b leads well within one lease duration (4 s).
        await WaitUntilAsync(() => leadershipB.IsLeader && homeB.Synced, "replica-b took over", seconds: 3);
        Assert.Equal("replica-b", server.Get<V1Lease>(Ns, options.LeaseName)!.Spec.HolderIdentity);
        await homeB.WriteStatusAsync([WithStatus(homeB.Current.Adapters[0].Resource, Status(LoraAdapterPhases.Ready, "from-b"))], CancellationToken.None);
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Status?.LoadedAdapters?.SequenceEqual(["from-b"]) == true, "the new leader writes");
        await WaitUntilAsync(() => homeB.StatusWrites >= 1, "counted");
    }

    [Fact]
    public async Task A_leader_that_cannot_renew_steps_down_and_one_replica_leads_again()
    {
        await using var server = await KubeApiServer.StartAsync();
        var options = FastOptions(o => { o.LeaderElection = true; o.LeaseDuration = TimeSpan.FromSeconds(2); o.RenewDeadline = TimeSpan.FromMilliseconds(1200); o.RetryPeriod = TimeSpan.FromMilliseconds(200); });
        await using var a = Leadership(server, "replica-a", options);
        a.Start();
        await WaitUntilAsync(() => a.IsLeader, "replica-a leads");
        await using var b = Leadership(server, "replica-b", options);
        b.Start();
        await WaitUntilAsync(() => b.Leader == "replica-a", "replica-b sees the leader");

        // replica-a's API calls all fail from now on (a partitioned or hung process): it cannot renew.
        var cut = server.InjectFault(new HybridServing.KubeApiTestServer.Faults.FaultRule("*", "leases", 100_000) { StatusCode = 503, Name = options.LeaseName, Namespace = Ns });
        // replica-b is not cut off: let its calls through by removing the fault once replica-a has lost the lease.
        await WaitUntilAsync(() => !a.IsLeader, "replica-a steps down after its renew deadline", seconds: 5);
        server.ClearFaults();
        Assert.True(cut.Hits > 0);
        await WaitUntilAsync(() => b.IsLeader || a.IsLeader, "someone leads again", seconds: 5);
        Assert.NotEqual(a.IsLeader, b.IsLeader);
    }
}
