from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.safestring import mark_safe

from models_registry import services
from models_registry.choices import ReviewStatus
from models_registry.evidence import review_evidence
from models_registry.models import BaseModel, ModelVersion, ModelVersionEvent, RegisteredModel
from portal.errors import ApplicationError


class RejectForm(forms.Form):
    # The review buttons sit inside the admin's change form; a form cannot nest in another, so
    # the fields name their own form (rendered after the change form) with the `form` attribute.
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4, "form": "reject-review"}), help_text="Told to the model's owner."
    )


class ApproveForm(forms.Form):
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "form": "approve-review"}), required=False, help_text="Optional."
    )


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
    """The review queue: filter what is pending, judge it on one screen, approve or reject."""

    list_display = ["__str__", "review_status", "created_by", "metric_map50", "reviewer", "reviewed_at", "created_at"]
    list_filter = ["review_status", "registered_model"]
    search_fields = ["registered_model__name", "created_by__username", "artifact_sha256"]
    date_hierarchy = "created_at"
    actions = ["approve_versions", "reject_versions"]
    inlines = [ModelVersionEventInline]
    readonly_fields = [f.name for f in ModelVersion._meta.fields]
    change_form_template = "admin/models_registry/modelversion/review.html"

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_approve_permission(self, request):
        return request.user.has_perm(services.APPROVE_PERMISSION)

    @admin.display(description="mAP50")
    def metric_map50(self, obj):
        value = obj.metrics.get("mAP50")
        return "-" if value is None else f"{value:.3f}"

    # --- one-screen evidence and buttons ------------------------------------

    def get_urls(self):
        extra = [
            path("<int:pk>/approve/", self.admin_site.admin_view(self.approve_view), name="modelversion_approve"),
            path("<int:pk>/reject/", self.admin_site.admin_view(self.reject_view), name="modelversion_reject"),
            path(
                "<int:pk>/evidence/<str:which>/<int:index>/",
                self.admin_site.admin_view(self.evidence_file_view),
                name="modelversion_evidence_file",
            ),
        ]
        return extra + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        version = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if version is not None:
            evidence = review_evidence(version)
            context.update(
                evidence=evidence,
                curves_svg=mark_safe(evidence["curves_svg"]),  # noqa: S308 - built from numbers we computed
                can_review=self.has_approve_permission(request)
                and version.review_status == ReviewStatus.PENDING_REVIEW,
                own_version=version.created_by_id == request.user.pk,
                approve_form=ApproveForm(),
                reject_form=RejectForm(),
            )
        return super().change_view(request, object_id, form_url, extra_context=context)

    def _review_or_message(self, request, pk, review):
        if request.method != "POST" or not self.has_approve_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=pk)
        try:
            review(version)
        except ApplicationError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return None, version
        return True, version

    def approve_view(self, request, pk):
        form = ApproveForm(request.POST)
        note = form.cleaned_data["note"] if form.is_valid() else ""
        done, version = self._review_or_message(
            request, pk, lambda v: services.model_version_approve(version=v, reviewer=request.user, note=note)
        )
        if done:
            self.message_user(request, f"Approved {version}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:models_registry_modelversion_change", args=[pk]))

    def reject_view(self, request, pk):
        form = RejectForm(request.POST)
        if not form.is_valid():
            if request.method != "POST" or not self.has_approve_permission(request):
                raise PermissionDenied
            self.message_user(request, "A rejection needs a reason.", messages.ERROR)
            return HttpResponseRedirect(reverse("admin:models_registry_modelversion_change", args=[pk]))
        reason = form.cleaned_data["reason"]
        done, version = self._review_or_message(
            request, pk, lambda v: services.model_version_reject(version=v, reviewer=request.user, reason=reason)
        )
        if done:
            self.message_user(request, f"Rejected {version}.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:models_registry_modelversion_change", args=[pk]))

    def evidence_file_view(self, request, pk, which, index):
        version = self.get_object(request, str(pk))
        if version is None or not self.has_view_permission(request, version):
            raise Http404
        validation = review_evidence(version)["validation"]
        if validation is None:
            raise Http404
        if which == "confusion" and validation.confusion_matrix_image:
            return FileResponse(validation.confusion_matrix_image.open("rb"), content_type="image/png")
        if which == "gallery" and 0 <= index < len(validation.gallery):
            from django.core.files.storage import default_storage

            return FileResponse(default_storage.open(validation.gallery[index], "rb"), content_type="image/jpeg")
        raise Http404

    # --- bulk actions ---------------------------------------------------------

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


@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "owner", "task", "min_map50", "max_class_regression", "created_at"]
    search_fields = ["name", "slug", "owner__username"]
    readonly_fields = ["name", "slug", "owner", "task", "classes", "created_at"]
    fieldsets = [
        (None, {"fields": ["name", "slug", "owner", "task", "classes", "created_at"]}),
        ("Promotion policy", {"fields": ["min_map50", "max_class_regression"]}),
    ]

    def has_add_permission(self, request):
        return False


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
