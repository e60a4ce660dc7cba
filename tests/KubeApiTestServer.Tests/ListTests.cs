using System.Net;
using k8s;
using k8s.Models;
using static HybridServing.KubeApiTestServer.Tests.Objects;

namespace HybridServing.KubeApiTestServer.Tests;

public sealed class ListTests
{
    private static async Task<KubeApiServer> WithPodsAsync()
    {
        var server = await KubeApiServer.StartAsync();
        server.Seed(Pod("p1", new Dictionary<string, string> { ["app"] = "engine", ["model"] = "llama" }, "node-a"));
        server.Seed(Pod("p2", new Dictionary<string, string> { ["app"] = "engine", ["model"] = "qwen" }, "node-b"));
        server.Seed(Pod("p3", new Dictionary<string, string> { ["app"] = "gateway" }, "node-a"));
        server.Seed(Pod("p4", null, "node-b"));
        return server;
    }

    [Theory]
    [InlineData("app=engine", "p1,p2")]
    [InlineData("app==engine", "p1,p2")]
    [InlineData("app!=engine", "p3,p4")]
    [InlineData("model in (llama, mistral)", "p1")]
    [InlineData("model notin (llama)", "p2,p3,p4")]
    [InlineData("model", "p1,p2")]
    [InlineData("!model", "p3,p4")]
    [InlineData("app=engine,model!=llama", "p2")]
    [InlineData("app in (engine,gateway),!model", "p3")]
    [InlineData("", "p1,p2,p3,p4")]
    public async Task Label_selectors_filter_like_Kubernetes(string selector, string expected)
    {
        await using var server = await WithPodsAsync();
        using var client = server.CreateClient();

        var list = await client.CoreV1.ListNamespacedPodAsync(Ns, labelSelector: selector);

        Assert.Equal(expected, string.Join(',', list.Items.Select(p => p.Metadata.Name)));
    }

    [Theory]
    [InlineData("app in (engine")]
    [InlineData("app=en gine")]
    [InlineData("=x")]
    [InlineData("app=engine,,model")]
    public async Task Malformed_label_selectors_are_400(string selector)
    {
        await using var server = await WithPodsAsync();
        using var client = server.CreateClient();

        var e = await ExpectStatus(HttpStatusCode.BadRequest, () => client.CoreV1.ListNamespacedPodAsync(Ns, labelSelector: selector));
        Assert.Contains("unable to parse requirement", Status(e).Message);
    }

    [Fact]
    public async Task Field_selectors_on_name_namespace_and_pod_fields()
    {
        await using var server = await WithPodsAsync();
        server.Seed(new V1Pod { Metadata = new V1ObjectMeta { Name = "p1", NamespaceProperty = "other" }, Spec = new V1PodSpec { Containers = [] } });
        using var client = server.CreateClient();

        var byName = await client.CoreV1.ListPodForAllNamespacesAsync(fieldSelector: "metadata.name=p1");
        var byNamespace = await client.CoreV1.ListPodForAllNamespacesAsync(fieldSelector: "metadata.namespace!=default");
        var byNode = await client.CoreV1.ListNamespacedPodAsync(Ns, fieldSelector: "spec.nodeName=node-b");
        var unsupported = await ExpectStatus(HttpStatusCode.BadRequest, () => client.CoreV1.ListNamespacedPodAsync(Ns, fieldSelector: "spec.priority=3"));

        Assert.Equal(["default/p1", "other/p1"], byName.Items.Select(p => p.Metadata.NamespaceProperty + "/" + p.Metadata.Name));
        Assert.Equal("other", Assert.Single(byNamespace.Items).Metadata.NamespaceProperty);
        Assert.Equal(["p2", "p4"], byNode.Items.Select(p => p.Metadata.Name));
        Assert.Equal("field label not supported: spec.priority", Status(unsupported).Message);
    }

    [Fact]
    public async Task List_metadata_carries_the_current_resourceVersion()
    {
        await using var server = await WithPodsAsync();
        using var client = server.CreateClient();

        var list = await client.CoreV1.ListNamespacedPodAsync(Ns);

        Assert.Equal(server.ResourceVersion.ToString(System.Globalization.CultureInfo.InvariantCulture), list.Metadata.ResourceVersion);
        Assert.Equal(4, list.Items.Count);
    }

    [Fact]
    public async Task Pagination_returns_a_consistent_snapshot_across_pages()
    {
        await using var server = await WithPodsAsync();
        using var client = server.CreateClient();

        var first = await client.CoreV1.ListNamespacedPodAsync(Ns, limit: 3);
        await client.CoreV1.CreateNamespacedPodAsync(Pod("p0"), Ns);
        await client.CoreV1.DeleteNamespacedPodAsync("p4", Ns);
        var second = await client.CoreV1.ListNamespacedPodAsync(Ns, limit: 3, continueParameter: first.Metadata.ContinueProperty);

        Assert.Equal(["p1", "p2", "p3"], first.Items.Select(p => p.Metadata.Name));
        Assert.Equal(1, first.Metadata.RemainingItemCount);
        Assert.NotNull(first.Metadata.ContinueProperty);
        Assert.Equal(["p4"], second.Items.Select(p => p.Metadata.Name));
        Assert.Null(second.Metadata.ContinueProperty);
        Assert.Equal(first.Metadata.ResourceVersion, second.Metadata.ResourceVersion);
    }

    [Fact]
    public async Task A_continue_token_older_than_compaction_is_410_and_garbage_is_400()
    {
        await using var server = await WithPodsAsync();
        using var client = server.CreateClient();
        var first = await client.CoreV1.ListNamespacedPodAsync(Ns, limit: 2);
        await client.CoreV1.CreateNamespacedPodAsync(Pod("p5"), Ns);

        server.CompactHistory();
        var expired = await ExpectStatus(HttpStatusCode.Gone, () => client.CoreV1.ListNamespacedPodAsync(Ns, limit: 2, continueParameter: first.Metadata.ContinueProperty));
        await ExpectStatus(HttpStatusCode.BadRequest, () => client.CoreV1.ListNamespacedPodAsync(Ns, limit: 2, continueParameter: "not-a-token"));

        Assert.Equal("Expired", Status(expired).Reason);
        Assert.Equal(410, Status(expired).Code);
    }

    [Fact]
    public async Task Generic_client_lists_custom_resources_with_selectors_and_limits()
    {
        await using var server = await KubeApiServer.StartAsync();
        using var client = server.CreateClient();
        using var adapters = new GenericClient(client, "hybridserving.io", "v1alpha1", "loraadapters", disposeClient: false);
        for (var i = 0; i < 5; i++)
        {
            await adapters.CreateNamespacedAsync(new Contracts.Resources.LoraAdapter
            {
                Metadata = new V1ObjectMeta { Name = "a" + i, Labels = new Dictionary<string, string> { ["tier"] = i % 2 == 0 ? "gold" : "silver" } },
            }, Ns);
        }

        var gold = await adapters.ListNamespacedAsync<Contracts.Resources.LoraAdapterList>(Ns, labelSelector: "tier=gold", limit: 2);
        var rest = await adapters.ListNamespacedAsync<Contracts.Resources.LoraAdapterList>(Ns, labelSelector: "tier=gold", limit: 2, continueToken: gold.Metadata.ContinueProperty);

        Assert.Equal(["a0", "a2"], gold.Items.Select(a => a.Metadata.Name));
        Assert.Equal(["a4"], rest.Items.Select(a => a.Metadata.Name));
    }
}
