using HybridServing.Contracts.Resources;
using HybridServing.ControlPlane.Kubernetes;
using HybridServing.KubeApiTestServer;
using k8s;
using static HybridServing.ControlPlane.Tests.Kubernetes.KubeHarness;

namespace HybridServing.ControlPlane.Tests.Kubernetes;

public sealed class FinalizerTests
{
    private static Task DeleteAsync(k8s.Kubernetes client, string name) =>
        client.CustomObjects.DeleteNamespacedCustomObjectAsync(LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, name);

    private static bool HasFinalizer(KubeApiServer server, string name) =>
        server.Get<LoraAdapter>(Ns, name)?.Metadata.Finalizers?.Contains(KubernetesHomeOptions.Finalizer) == true;

    [Fact]
    public async Task Every_LoraAdapter_gets_the_finalizer_including_new_ones()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var existing = Adapter("existing");
        existing.Metadata.Finalizers = ["someone.else/keep"];
        server.Seed(existing);
        await using var home = Home(server);
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => HasFinalizer(server, "existing"), "the finalizer on the existing object");
        // Other controllers' finalizers are kept.
        Assert.Equal(["someone.else/keep", KubernetesHomeOptions.Finalizer], server.Get<LoraAdapter>(Ns, "existing")!.Metadata.Finalizers);

        await client.CustomObjects.CreateNamespacedCustomObjectAsync(Adapter("created"), LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural);
        await WaitUntilAsync(() => HasFinalizer(server, "created"), "the finalizer on the new object");
        // One successful patch per object (a 409 on the resourceVersion precondition would be re-read and retried).
        Assert.Equal(2, server.Requests.Count(r => r.Verb == "patch" && r.Resource == "loraadapters" && r.StatusCode < 300));
    }

    [Fact]
    public async Task A_deleted_LoraAdapter_leaves_the_picture_and_goes_only_once_its_adapters_are_unloaded()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(Adapter("sql"));
        server.Seed(Adapter("chat"));
        var residency = new FakeResidency();
        await using var home = Home(server, residency: residency);
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => HasFinalizer(server, "sql") && HasFinalizer(server, "chat") && home.Current.Adapters.Count == 2, "finalizers added");

        // The reconciler placed and recorded both; the engines hold their adapters.
        var declared = home.Current.Adapters.ToDictionary(d => d.Resource.Metadata.Name, d => d.Resource);
        await home.WriteStatusAsync([WithStatus(declared["sql"], Status(LoraAdapterPhases.Ready, "sql-v1", "sql-v2")), WithStatus(declared["chat"], Status(LoraAdapterPhases.Ready, "chat-v1"))], CancellationToken.None);
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Status?.Phase == LoraAdapterPhases.Ready, "statuses written");
        residency.Set("sql-v1", "sql-v2", "chat-v1");

        await DeleteAsync(client, "sql");
        await WaitUntilAsync(() => home.Current.Adapters.All(d => d.Resource.Metadata.Name != "sql"), "the deleted object left the picture");
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")?.Status?.Phase == LoraAdapterPhases.Deleting, "status says Deleting");
        var deleting = server.Get<LoraAdapter>(Ns, "sql")!;
        Assert.NotNull(deleting.Metadata.DeletionTimestamp);
        var ready = deleting.Status!.Conditions!.Single(c => c.Type == LoraAdapterConditionTypes.Ready);
        Assert.Equal("False", ready.Status);
        Assert.Contains("sql-v1", ready.Message);

        // The reconciler's next pass no longer includes it, but the engines still hold its adapters: it stays.
        await home.WriteStatusAsync([WithStatus(declared["chat"], Status(LoraAdapterPhases.Ready, "chat-v1"))], CancellationToken.None);
        await Task.Delay(200);
        Assert.True(HasFinalizer(server, "sql"));

        // One is unloaded, then the other: only then is the finalizer removed and the object gone.
        residency.Set("sql-v2", "chat-v1");
        await Task.Delay(100);
        Assert.True(HasFinalizer(server, "sql"));
        residency.Set("chat-v1");
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql") is null, "the object is gone after the unload");
        Assert.NotNull(server.Get<LoraAdapter>(Ns, "chat"));
        await WaitUntilAsync(() => server.List<k8s.Models.Eventsv1Event>(Ns).Any(e => e.Reason == "Unloaded" && e.Regarding.Name == "sql" && e.ReportingController == AdapterEvents.Controller),
            "the Unloaded event");
    }

    [Fact]
    public async Task The_finalizer_waits_for_a_reconcile_pass_without_the_object()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(Adapter("sql"));
        server.Seed(EnginePod("vllm-0")); // an engine could still be given the adapter until the reconciler acted
        await using var home = Home(server);
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => HasFinalizer(server, "sql"), "finalizer added");

        await DeleteAsync(client, "sql");
        await WaitUntilAsync(() => home.Current.Adapters.Count == 0, "gone from the picture");
        await Task.Delay(200);
        // Nothing resident, but an engine exists and the reconciler has not yet acted on the deletion.
        Assert.True(HasFinalizer(server, "sql"));
        await home.WriteStatusAsync([], CancellationToken.None);
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql") is null, "removed after the pass");
    }

    [Fact]
    public async Task A_name_another_live_LoraAdapter_now_exposes_is_not_waited_for()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(Adapter("old"));
        server.Seed(Adapter("heir"));
        var residency = new FakeResidency();
        await using var home = Home(server, residency: residency);
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => HasFinalizer(server, "old") && HasFinalizer(server, "heir") && home.Current.Adapters.Count == 2, "finalizers added");
        var declared = home.Current.Adapters.ToDictionary(d => d.Resource.Metadata.Name, d => d.Resource);
        await home.WriteStatusAsync([WithStatus(declared["old"], Status(LoraAdapterPhases.Ready, "shared")), WithStatus(declared["heir"], Status(LoraAdapterPhases.Ready, "shared"))], CancellationToken.None);
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "heir")!.Status?.Adapters?.Count == 1, "statuses written");
        residency.Set("shared");

        await DeleteAsync(client, "old");
        await WaitUntilAsync(() => home.Current.Adapters.Count == 1, "gone from the picture");
        await home.WriteStatusAsync([WithStatus(declared["heir"], Status(LoraAdapterPhases.Ready, "shared"))], CancellationToken.None);
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "old") is null, "removed although 'shared' stays loaded for the heir");
    }

    [Fact]
    public async Task Objects_whose_engines_are_gone_lose_the_finalizer_without_a_reconcile_pass()
    {
        // An uninstall (`kubectl delete -k k8s/`) deletes the engine pool and the LoraAdapters together, and
        // the reconciler may never run another pass: nothing may be left waiting for engines that are gone.
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(Adapter("sql"));
        server.Seed(Adapter("chat"));
        server.Seed(EnginePod("vllm-0"));
        var residency = new FakeResidency();
        await using var home = Home(server, residency: residency);
        await home.StartAsync(CancellationToken.None);
        await WaitUntilAsync(() => HasFinalizer(server, "sql") && HasFinalizer(server, "chat") && home.Current.Engines.Count == 1, "finalizers added, engine seen");
        var declared = home.Current.Adapters.ToDictionary(d => d.Resource.Metadata.Name, d => d.Resource);
        await home.WriteStatusAsync([WithStatus(declared["sql"], Status(LoraAdapterPhases.Ready, "sql-v1")), WithStatus(declared["chat"], Status(LoraAdapterPhases.Ready, "chat-v1"))], CancellationToken.None);
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")!.Status?.Phase == LoraAdapterPhases.Ready, "statuses written");
        residency.Set("sql-v1", "chat-v1");

        await DeleteAsync(client, "sql");
        await DeleteAsync(client, "chat");
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql")?.Status?.Phase == LoraAdapterPhases.Deleting, "status says Deleting");
        await Task.Delay(200);
        Assert.True(HasFinalizer(server, "sql")); // the engine still holds them

        // The engine pool goes (its sidecar's state leaves with it).
        await client.CoreV1.DeleteNamespacedPodAsync("vllm-0", Ns, new k8s.Models.V1DeleteOptions { GracePeriodSeconds = 0 });
        residency.Set();
        await WaitUntilAsync(() => server.Get<LoraAdapter>(Ns, "sql") is null && server.Get<LoraAdapter>(Ns, "chat") is null, "both gone with no engine left");
    }
}
