from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse

from models_registry import services
from models_registry.models import BaseModel, ModelVersion, ModelVersionEvent, RegisteredModel
from portal.errors import ApplicationError


class RejectForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), help_text="Told to the model's owner.")


class ModelVersionEventInline(admin.TabularInline):
    model = ModelVersionEvent
    fields = ["created_at", "kind", "actor", "reason"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "review_status", "created_by", "metric_map50", "reviewer", "reviewed_at", "created_at"]
    list_filter = ["review_status", "registered_model"]
    search_fields = ["registered_model__name", "created_by__username", "artifact_sha256"]
    date_hierarchy = "created_at"
    actions = ["approve_versions", "reject_versions"]
    inlines = [ModelVersionEventInline]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="mAP50")
    def metric_map50(self, obj):
        value = obj.metrics.get("mAP50")
        return "-" if value is None else f"{value:.3f}"

    def _review_each(self, request, queryset, review):
        done = 0
        for version in queryset:
            try:
                review(version)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{version}: {exc.message}", messages.ERROR)
        return done

    @admin.action(description="Approve selected versions", permissions=["approve"])
    def approve_versions(self, request, queryset):
        done = self._review_each(
            request, queryset, lambda v: services.model_version_approve(version=v, reviewer=request.user)
        )
        if done:
            self.message_user(request, f"Approved {done} version(s).", messages.SUCCESS)

    @admin.action(description="Reject selected versions…", permissions=["approve"])
    def reject_versions(self, request, queryset):
        form = RejectForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            reason = form.cleaned_data["reason"]
            done = self._review_each(
                request,
                queryset,
                lambda v: services.model_version_reject(version=v, reviewer=request.user, reason=reason),
            )
            if done:
                self.message_user(request, f"Rejected {done} version(s).", messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Reject model versions",
            "opts": self.model._meta,
            "versions": queryset,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/models_registry/reject_reason.html", context)

    def has_approve_permission(self, request):
        return request.user.has_perm(services.APPROVE_PERMISSION)


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "owner", "task", "created_at"]
    search_fields = ["name", "slug", "owner__username"]
    readonly_fields = ["created_at"]


class BaseModelForm(forms.ModelForm):
    class Meta:
        model = BaseModel
        fields = ["name", "description", "weights"]


@admin.register(BaseModel)
class BaseModelAdmin(admin.ModelAdmin):
    """Staff upload pretrained weights here; they are trusted files (never user uploads)."""

    form = BaseModelForm
    list_display = ["name", "sha256", "size", "uploaded_by", "created_at"]
    readonly_fields = ["sha256", "size", "uploaded_by", "created_at"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        services.base_model_create(instance=obj, uploaded_by=request.user)
