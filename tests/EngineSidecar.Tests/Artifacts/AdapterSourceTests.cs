using HybridServing.EngineSidecar.Artifacts;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Reconciliation;
using HybridServing.EngineSidecar.RolloutFile;
using HybridServing.TestKit;

namespace HybridServing.EngineSidecar.Tests.Artifacts;

public sealed class AdapterSourceTests
{
    [Theory]
    [InlineData("/models/a", "Local", "file:/models/a")]
    [InlineData("file:///models/a", "Local", "file:/models/a")]
    [InlineData("https://files.example/adapters/a/", "Http", "https://files.example/adapters/a")]
    [InlineData("s3://my-bucket/adapters/a", "S3", "s3://my-bucket/adapters/a")]
    [InlineData("hf://org/repo@v1.0", "Hub", "hf://org/repo/@v1.0")]
    [InlineData("huggingface://org/repo/sub/dir", "Hub", "hf://org/repo/sub/dir@(default)")]
    [InlineData("Kawon/llama3.1-food-finetune_v14_r8", "Hub", "hf://Kawon/llama3.1-food-finetune_v14_r8/@(default)")]
    public void Parses_every_supported_form(string text, string kind, string key)
    {
        var source = AdapterSource.Parse(text);
        Assert.Equal(Enum.Parse<AdapterSourceKind>(kind), source.Kind);
        Assert.Equal(key, source.CacheKey);
    }

    [Theory]
    [InlineData("", "empty")]
    [InlineData("relative/path/x", "neither")]
    [InlineData("ftp://host/x", "scheme 'ftp'")]
    [InlineData("https://user:pw@host/x", "credentials in the URL")]
    [InlineData("s3://Bad_Bucket/x", "bucket name")]
    [InlineData("s3://bucket/a/../b", "'..'")]
    [InlineData("hf://org/repo/../x", "subfolder")]
    [InlineData("hf://justone", "hf://org/repo")]
    [InlineData("hf://org/repo@", "revision")]
    [InlineData("file://host/share/x", "file:///absolute")]
    [InlineData("/models/\u0001a", "control")]
    public void Refuses_bad_sources_with_the_reason(string text, string expected)
    {
        var e = Assert.Throws<ArtifactException>(() => AdapterSource.Parse(text));
        Assert.Equal(FailureReasons.InvalidSource, e.Reason);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void Credentials_in_sources_never_reach_messages()
    {
        var e = Assert.Throws<ArtifactException>(() => AdapterSource.Parse("https://user:s3cret@host/x?X-Amz-Signature=abc"));
        Assert.DoesNotContain("s3cret", e.Message);
        Assert.DoesNotContain("abc", e.Message);
        Assert.Equal("https://files/a?…", AdapterSource.Parse("https://files/a?sig=abc").Display);
        Assert.Equal("hf://org/repo@v1", AdapterSource.Parse("hf://org/repo@v1").Display);
    }

    [Theory]
    [InlineData("food-review-1", null)]
    [InlineData("sql_lora:v2@prod", null)]
    [InlineData("", "empty")]
    [InlineData("../../etc/passwd", "path syntax")]
    [InlineData("a/b", "path syntax")]
    [InlineData("a\\b", "path syntax")]
    [InlineData("-leading", "start with a letter")]
    [InlineData("white space", "may only contain")]
    public void Adapter_names(string name, string? problem)
    {
        var result = AdapterNames.Check(name);
        if (problem is null) Assert.Null(result);
        else Assert.Contains(problem, result);
        Assert.Contains("limit is 253", AdapterNames.Check(new string('a', 254)));
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("sha256:ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789", "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789")]
    public void Digests_are_normalised(string? given, string? expected) => Assert.Equal(expected, ArtifactCache.NormalizeDigest(given));

    [Fact]
    public void A_short_digest_is_refused() =>
        Assert.Contains("64 hexadecimal", Assert.Throws<ArtifactException>(() => ArtifactCache.NormalizeDigest("abc")).Message);
}
