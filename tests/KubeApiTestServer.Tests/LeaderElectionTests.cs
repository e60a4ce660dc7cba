using k8s.LeaderElection;
using k8s.LeaderElection.ResourceLock;
using k8s.Models;

namespace HybridServing.KubeApiTestServer.Tests;

public sealed class LeaderElectionTests
{
    [Fact]
    public async Task Two_electors_on_one_Lease_one_leads_and_stopping_it_hands_over()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var clientA = server.CreateClient();
        using var clientB = server.CreateClient();

        LeaderElector Elector(k8s.Kubernetes client, string identity) => new(new LeaderElectionConfig(new LeaseLock(client, "default", "hybridserving-controlplane", identity))
        {
            // Generous against the lease so a loaded CI machine does not lose leadership by accident.
            LeaseDuration = TimeSpan.FromMilliseconds(2000),
            RenewDeadline = TimeSpan.FromMilliseconds(1500),
            RetryPeriod = TimeSpan.FromMilliseconds(150),
        });

        using var a = Elector(clientA, "cp-a");
        var aLeads = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        a.OnStartedLeading += () => aLeads.TrySetResult();
        using var stopA = new CancellationTokenSource();
        var runA = a.RunUntilLeadershipLostAsync(stopA.Token);
        await aLeads.Task.WaitAsync(TimeSpan.FromSeconds(5));

        using var b = Elector(clientB, "cp-b");
        var bLeads = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        b.OnStartedLeading += () => bLeads.TrySetResult();
        using var stopB = new CancellationTokenSource();
        var runB = b.RunUntilLeadershipLostAsync(stopB.Token);

        // B only observes A's renewals for longer than a lease.
        await Task.Delay(2500);
        Assert.False(bLeads.Task.IsCompleted);
        Assert.True(a.IsLeader());
        Assert.Equal("cp-a", server.Get<V1Lease>("default", "hybridserving-controlplane")!.Spec.HolderIdentity);

        await stopA.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => runA).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { });

        // LeaderElector does not release the Lease when cancelled: B takes over once A's lease expires.
        await bLeads.Task.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.True(b.IsLeader());
        Assert.Equal("cp-b", server.Get<V1Lease>("default", "hybridserving-controlplane")!.Spec.HolderIdentity);
        Assert.Contains(server.Requests, r => r.Resource == "leases" && r.Verb == "update" && r.StatusCode == 200);
        await stopB.CancelAsync();
        await runB.ContinueWith(_ => { });
    }
}
