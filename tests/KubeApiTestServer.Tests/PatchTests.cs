using System.Net;
using HybridServing.Contracts.Resources;
using k8s;
using k8s.Models;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

public sealed class PatchTests
{
    [Fact]
    public async Task Merge_patch_merges_objects_removes_nulls_and_replaces_lists()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var cm = ConfigMap("a", new Dictionary<string, string> { ["keep"] = "1", ["drop"] = "1" }, new Dictionary<string, string> { ["x"] = "1", ["y"] = "2" });
        await client.CoreV1.CreateNamespacedConfigMapAsync(cm, Ns);

        var patched = await client.CoreV1.PatchNamespacedConfigMapAsync(
            new V1Patch("{\"metadata\":{\"labels\":{\"drop\":null,\"new\":\"2\"},\"finalizers\":[\"a/b\"]},\"data\":{\"y\":\"3\"}}", V1Patch.PatchType.MergePatch), "a", Ns);

        Assert.Equal(new Dictionary<string, string> { ["keep"] = "1", ["new"] = "2" }, patched.Metadata.Labels);
        Assert.Equal(new Dictionary<string, string> { ["x"] = "1", ["y"] = "3" }, patched.Data);
        Assert.Equal(["a/b"], patched.Metadata.Finalizers);
    }

    [Fact]
    public async Task Json_patch_applies_operations_in_order_and_a_failed_test_is_422()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);

        var patched = await client.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch(
            "[{\"op\":\"test\",\"path\":\"/data/k\",\"value\":\"v\"},{\"op\":\"add\",\"path\":\"/metadata/labels\",\"value\":{\"a/b\":\"c\"}},{\"op\":\"replace\",\"path\":\"/data/k\",\"value\":\"w\"},{\"op\":\"copy\",\"from\":\"/data/k\",\"path\":\"/data/k2\"},{\"op\":\"remove\",\"path\":\"/data/k\"}]",
            V1Patch.PatchType.JsonPatch), "a", Ns);

        Assert.Equal("c", patched.Metadata.Labels["a/b"]);
        Assert.Equal(new Dictionary<string, string> { ["k2"] = "w" }, patched.Data);
        var e = await ExpectStatus(HttpStatusCode.UnprocessableEntity, () => client.CoreV1.PatchNamespacedConfigMapAsync(
            new V1Patch("[{\"op\":\"test\",\"path\":\"/data/k2\",\"value\":\"nope\"}]", V1Patch.PatchType.JsonPatch), "a", Ns));
        Assert.Contains("testing value /data/k2 failed", Status(e).Message);
        await ExpectStatus(HttpStatusCode.UnprocessableEntity, () => client.CoreV1.PatchNamespacedConfigMapAsync(
            new V1Patch("[{\"op\":\"remove\",\"path\":\"/data/missing\"}]", V1Patch.PatchType.JsonPatch), "a", Ns));
    }

    [Fact]
    public async Task A_resourceVersion_inside_a_patch_is_a_precondition()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        var created = await client.CoreV1.CreateNamespacedConfigMapAsync(ConfigMap("a"), Ns);
        await client.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch("{\"data\":{\"k\":\"2\"}}", V1Patch.PatchType.MergePatch), "a", Ns);

        var body = "{\"metadata\":{\"resourceVersion\":\"" + created.Metadata.ResourceVersion + "\"},\"data\":{\"k\":\"3\"}}";
        var e = await ExpectStatus(HttpStatusCode.Conflict, () => client.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch(body, V1Patch.PatchType.MergePatch), "a", Ns));

        Assert.Equal("Conflict", Status(e).Reason);
    }

    [Fact]
    public async Task Strategic_merge_patch_is_refused_for_custom_resources_like_a_real_server()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        server.Seed(new LoraAdapter { Metadata = new V1ObjectMeta { Name = "sql", NamespaceProperty = Ns } });

        var e = await ExpectStatus(HttpStatusCode.UnsupportedMediaType, () => client.CustomObjects.PatchNamespacedCustomObjectAsync(
            new V1Patch("{\"spec\":{\"baseModel\":\"x\"}}", V1Patch.PatchType.StrategicMergePatch), LoraAdapter.Group, LoraAdapter.Version, Ns, LoraAdapter.Plural, "sql"));

        Assert.Contains("strategic merge patch is not supported for custom resources", Status(e).Message);
    }

    [Fact]
    public async Task Patching_a_missing_object_is_404()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();

        await ExpectStatus(HttpStatusCode.NotFound, () => client.CoreV1.PatchNamespacedConfigMapAsync(new V1Patch("{}", V1Patch.PatchType.MergePatch), "a", Ns));
    }
}
