using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using HybridServing.Contracts.Peft;
using HybridServing.EngineSidecar.Artifacts;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;

namespace HybridServing.EngineSidecar.Tests.Artifacts;

/// <summary>s3:// sources against a real s3rver with endpoint override, path-style addressing and mounted credentials.</summary>
public sealed class S3SourceTests(S3rverFixture s3) : IClassFixture<S3rverFixture>
{
    private async Task UploadAsync(string prefix, string adapterDir)
    {
        using var client = new AmazonS3Client(new BasicAWSCredentials("S3RVER", "S3RVER"),
            new AmazonS3Config { ServiceURL = s3.ServiceUrl.ToString(), ForcePathStyle = true, AuthenticationRegion = "us-east-1" });
        foreach (var file in new[] { PeftAdapter.ConfigFileName, PeftAdapter.SafetensorsFileName })
        {
            await client.PutObjectAsync(new PutObjectRequest
            {
                BucketName = S3rverFixture.Bucket,
                Key = $"{prefix}/{file}",
                FilePath = Path.Combine(adapterDir, file),
                // s3rver would store aws-chunked framing as part of the object.
                UseChunkEncoding = false,
            });
        }
    }

    [Fact]
    public async Task Downloads_with_credentials_from_a_mounted_secret_and_verifies_the_digest()
    {
        using var dir = new TempDirectory("s3");
        var src = TestAdapters.Write(dir.Path, "s3a", rank: 16);
        await UploadAsync("team/s3a", src);
        var digest = await PeftAdapter.ComputeDigestAsync(Path.Combine(src, PeftAdapter.SafetensorsFileName));
        var secret = Directory.CreateDirectory(dir.Combine("secret")).FullName;
        File.WriteAllText(Path.Combine(secret, "aws_access_key_id"), "S3RVER\n");
        File.WriteAllText(Path.Combine(secret, "aws_secret_access_key"), "S3RVER\n");
        var (cache, _) = ArtifactCacheTests.NewCache(dir.Combine("cache"),
            s3: new S3Options { ServiceUrl = s3.ServiceUrl.ToString(), ForcePathStyle = true, Region = "us-east-1", CredentialsDirectory = secret });

        var artifact = await cache.ResolveAsync(AdapterSource.Parse($"s3://{S3rverFixture.Bucket}/team/s3a"), digest, (_, _) => { }, CancellationToken.None);
        Assert.Equal(digest, artifact.Digest);
        Assert.Equal(16, artifact.Info.Rank);
        Assert.True(artifact.Downloaded);

        var missing = await Assert.ThrowsAsync<ArtifactException>(() =>
            cache.ResolveAsync(AdapterSource.Parse($"s3://{S3rverFixture.Bucket}/team/none"), null, (_, _) => { }, CancellationToken.None));
        Assert.Equal(FailureReasons.NotFound, missing.Reason);
        var wrong = await Assert.ThrowsAsync<ArtifactException>(() =>
            cache.ResolveAsync(AdapterSource.Parse($"s3://{S3rverFixture.Bucket}/team/s3a"), new string('c', 64), (_, _) => { }, CancellationToken.None));
        Assert.Equal(FailureReasons.DigestMismatch, wrong.Reason);
    }

    [Fact]
    public async Task Credentials_and_endpoint_come_from_the_environment_when_not_configured()
    {
        using var dir = new TempDirectory("s3env");
        await UploadAsync("env/a", TestAdapters.Write(dir.Path, "envA"));
        var env = new Dictionary<string, string>
        {
            ["AWS_ACCESS_KEY_ID"] = "S3RVER", ["AWS_SECRET_ACCESS_KEY"] = "S3RVER", ["AWS_ENDPOINT_URL_S3"] = s3.ServiceUrl.ToString(), ["AWS_REGION"] = "us-east-1",
        };
        using var client = S3ArtifactFetcher.CreateClient(new S3Options { ForcePathStyle = true }, n => env.GetValueOrDefault(n));
        var fetcher = new S3ArtifactFetcher(new S3Options { ForcePathStyle = true }, n => env.GetValueOrDefault(n), new SourceCredentials(null));
        var target = Directory.CreateDirectory(dir.Combine("out")).FullName;
        await fetcher.FetchAsync(AdapterSource.Parse($"s3://{S3rverFixture.Bucket}/env/a"), target,
            new DownloadBudget(1 << 30, TimeSpan.FromSeconds(5), (_, _) => { }), CancellationToken.None);
        Assert.Equal(8, PeftAdapter.Read(target).Rank);
        Assert.Equal(s3.ServiceUrl.ToString().TrimEnd('/'), client.Config.ServiceURL.TrimEnd('/'));
    }

    [Theory]
    [InlineData("http://minio.storage.svc:9000", null, true)] // an endpoint by name: its buckets are not subdomains that resolve
    [InlineData(null, null, false)]                             // AWS: virtual-hosted
    [InlineData("http://minio.storage.svc:9000", false, false)] // an explicit setting wins
    public void Path_style_is_the_default_with_an_endpoint_override_as_in_the_ControlPlane(string? endpoint, bool? configured, bool expected)
    {
        var env = new Dictionary<string, string>();
        if (endpoint is not null) env["AWS_ENDPOINT_URL"] = endpoint;
        using var client = S3ArtifactFetcher.CreateClient(new S3Options { ForcePathStyle = configured }, n => env.GetValueOrDefault(n),
            new Amazon.Runtime.BasicAWSCredentials("id", "secret"));
        Assert.Equal(expected, ((Amazon.S3.AmazonS3Config)client.Config).ForcePathStyle);
    }

    [Fact]
    public async Task A_tar_gz_object_is_one_artifact()
    {
        using var dir = new TempDirectory("s3tar");
        var src = TestAdapters.Write(dir.Path, "tarred");
        var archive = dir.Combine("tarred.tar.gz");
        await using (var file = File.Create(archive))
        await using (var gzip = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionLevel.Fastest))
            await System.Formats.Tar.TarFile.CreateFromDirectoryAsync(src, gzip, includeBaseDirectory: false);
        using var client = new AmazonS3Client(new BasicAWSCredentials("S3RVER", "S3RVER"),
            new AmazonS3Config { ServiceURL = s3.ServiceUrl.ToString(), ForcePathStyle = true, AuthenticationRegion = "us-east-1" });
        await client.PutObjectAsync(new PutObjectRequest { BucketName = S3rverFixture.Bucket, Key = "pkg/tarred.tar.gz", FilePath = archive, UseChunkEncoding = false });
        var env = new Dictionary<string, string> { ["AWS_ACCESS_KEY_ID"] = "S3RVER", ["AWS_SECRET_ACCESS_KEY"] = "S3RVER" };
        var (cache, _) = ArtifactCacheTests.NewCache(dir.Combine("cache"), s3: new S3Options { ServiceUrl = s3.ServiceUrl.ToString(), ForcePathStyle = true },
            environment: n => env.GetValueOrDefault(n));
        var artifact = await cache.ResolveAsync(AdapterSource.Parse($"s3://{S3rverFixture.Bucket}/pkg/tarred.tar.gz"), null, (_, _) => { }, CancellationToken.None);
        Assert.Equal(8, artifact.Info.Rank);
    }

    [Fact]
    public void An_incomplete_secret_directory_is_a_clear_error()
    {
        using var dir = new TempDirectory("s3bad");
        File.WriteAllText(dir.Combine("aws_access_key_id"), "x");
        var e = Assert.Throws<InvalidOperationException>(() => S3ArtifactFetcher.FromSecretDirectory(dir.Path));
        Assert.Contains("aws_secret_access_key", e.Message);
    }
}
