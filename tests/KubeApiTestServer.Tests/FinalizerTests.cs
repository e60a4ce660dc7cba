using System.Net;
using HybridServing.Contracts.Resources;
using k8s;
using k8s.Models;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

public sealed class FinalizerTests
{
    private const string Finalizer = "hybridserving.io/unload";

    [Fact]
    public async Task Delete_with_a_finalizer_marks_the_object_and_removing_the_last_finalizer_deletes_it()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        using var adapters = new GenericClient(client, LoraAdapter.Group, LoraAdapter.Version, LoraAdapter.Plural, disposeClient: false);
        var created = await adapters.CreateNamespacedAsync(new LoraAdapter
        {
            Metadata = new V1ObjectMeta { Name = "sql", Finalizers = [Finalizer, "other.io/keep"] },
        }, Ns);
        await using var watch = new WatchCollector<LoraAdapter>((onError, ct) =>
            AdapterWatch.Open(client, created.Metadata.ResourceVersion, onError, ct));
        await server.WaitForWatchesAsync(1, TimeSpan.FromSeconds(5));

        var marked = await adapters.DeleteNamespacedAsync<LoraAdapter>(Ns, "sql");
        var again = await adapters.DeleteNamespacedAsync<LoraAdapter>(Ns, "sql");
        var still = await adapters.ReadNamespacedAsync<LoraAdapter>(Ns, "sql");

        Assert.NotNull(marked.Metadata.DeletionTimestamp);
        Assert.Equal(marked.Metadata.ResourceVersion, again.Metadata.ResourceVersion);
        Assert.Equal(marked.Metadata.DeletionTimestamp, still.Metadata.DeletionTimestamp);
        var modified = (await watch.NextAsync())!.Value;
        Assert.Equal(WatchEventType.Modified, modified.Type);
        Assert.NotNull(modified.Object.Metadata.DeletionTimestamp);

        // New finalizers cannot be added once deletion started.
        var e = await ExpectStatus(HttpStatusCode.UnprocessableEntity, () => adapters.PatchNamespacedAsync<LoraAdapter>(
            new V1Patch("{\"metadata\":{\"finalizers\":[\"hybridserving.io/unload\",\"other.io/keep\",\"late.io/x\"]}}", V1Patch.PatchType.MergePatch), Ns, "sql"));
        Assert.Contains("no new finalizers can be added", Status(e).Message);

        still.Metadata.Finalizers = ["other.io/keep"];
        var one = await adapters.ReplaceNamespacedAsync(still, Ns, "sql");
        Assert.Equal(["other.io/keep"], one.Metadata.Finalizers);
        Assert.Equal(WatchEventType.Modified, (await watch.NextAsync())!.Value.Type);

        await adapters.PatchNamespacedAsync<LoraAdapter>(
            new V1Patch("[{\"op\":\"remove\",\"path\":\"/metadata/finalizers\"}]", V1Patch.PatchType.JsonPatch), Ns, "sql");

        var deleted = (await watch.NextAsync())!.Value;
        Assert.Equal(WatchEventType.Deleted, deleted.Type);
        Assert.Equal("sql", deleted.Object.Metadata.Name);
        Assert.Null(server.Get<LoraAdapter>(Ns, "sql"));
        await ExpectStatus(HttpStatusCode.NotFound, () => adapters.ReadNamespacedAsync<LoraAdapter>(Ns, "sql"));
    }

    [Fact]
    public async Task Status_writes_still_work_while_an_object_is_terminating()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(new LoraAdapter { Metadata = new V1ObjectMeta { Name = "sql", NamespaceProperty = Ns, Finalizers = [Finalizer] } });
        await client.CustomObjects.DeleteNamespacedCustomObjectAsync(LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "sql");

        var deleting = await client.CustomObjects.PatchNamespacedCustomObjectStatusAsync<LoraAdapter>(
            new V1Patch("{\"status\":{\"phase\":\"Deleting\"}}", V1Patch.PatchType.MergePatch), LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "sql");

        Assert.Equal(LoraAdapterPhases.Deleting, deleting.Status!.Phase);
        Assert.NotNull(deleting.Metadata.DeletionTimestamp);
    }

    [Fact]
    public async Task Deleting_an_owner_collects_its_dependents_unless_orphaned()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var owner = server.Seed(new LoraAdapter { Metadata = new V1ObjectMeta { Name = "sql", NamespaceProperty = Ns } });
        var ownerRef = new V1OwnerReference { ApiVersion = LoraAdapter.ApiVersionValue, Kind = LoraAdapter.KindName, Name = "sql", Uid = owner.Metadata.Uid, Controller = true };
        await client.CoreV1.CreateNamespacedServiceAsync(new V1Service { Metadata = new V1ObjectMeta { Name = "sql", OwnerReferences = [ownerRef] } }, Ns);
        await client.DiscoveryV1.CreateNamespacedEndpointSliceAsync(new V1EndpointSlice { Metadata = new V1ObjectMeta { Name = "sql-1", OwnerReferences = [ownerRef] }, AddressType = "IPv4", Endpoints = [] }, Ns);
        await client.CoreV1.CreateNamespacedServiceAsync(new V1Service { Metadata = new V1ObjectMeta { Name = "unrelated" } }, Ns);

        await client.CustomObjects.DeleteNamespacedCustomObjectAsync(LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "sql");

        Assert.Equal(["unrelated"], (await client.CoreV1.ListNamespacedServiceAsync(Ns)).Items.Select(s => s.Metadata.Name));
        Assert.Empty((await client.DiscoveryV1.ListNamespacedEndpointSliceAsync(Ns)).Items);

        var second = server.Seed(new LoraAdapter { Metadata = new V1ObjectMeta { Name = "kept", NamespaceProperty = Ns } });
        ownerRef.Uid = second.Metadata.Uid;
        await client.CoreV1.CreateNamespacedServiceAsync(new V1Service { Metadata = new V1ObjectMeta { Name = "orphan", OwnerReferences = [ownerRef] } }, Ns);
        await client.CustomObjects.DeleteNamespacedCustomObjectAsync(LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "kept", propagationPolicy: "Orphan");
        Assert.NotNull(server.Get<V1Service>(Ns, "orphan"));
    }
}
