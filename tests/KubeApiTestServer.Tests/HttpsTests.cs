using System.Net.Http;
using k8s;
using k8s.Models;

namespace HybridServing.KubeApiTestServer.Tests;

/// <summary><see cref="KubeApiServerOptions.Https"/>: the server's certificate chains to its own CA, which clients must be given.</summary>
public sealed class HttpsTests
{
    [Fact]
    public async Task KubernetesClient_and_kubectl_trust_the_servers_CA_and_a_client_without_it_is_refused()
    {
        await using var server = await KubeApiServer.StartAsync(new KubeApiServerOptions { Https = true });
        Assert.StartsWith("https://127.0.0.1:", server.Url, StringComparison.Ordinal);
        Assert.StartsWith("-----BEGIN CERTIFICATE-----", server.CertificateAuthorityPem, StringComparison.Ordinal);

        using var client = server.CreateClient();
        await client.CoreV1.CreateNamespacedConfigMapAsync(new V1ConfigMap { Metadata = new V1ObjectMeta { Name = "over-tls" } }, "default");

        using var kubectl = new Kubectl(server);
        Assert.Contains("configmap/over-tls", await kubectl.RunAsync("get", "configmaps", "-o", "name"), StringComparison.Ordinal);

        using var untrusting = new Kubernetes(new KubernetesClientConfiguration { Host = server.Url });
        await Assert.ThrowsAsync<HttpRequestException>(() => untrusting.CoreV1.ListNamespacedConfigMapAsync("default"));
    }
}
